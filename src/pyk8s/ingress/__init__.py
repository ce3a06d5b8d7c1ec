"""pyk8s ingress-controller: Ingress objects served by a real nginx.

:mod:`~pyk8s.ingress.render` turns Ingress, Service, EndpointSlice and Secret objects into
nginx.conf text (pure); :mod:`~pyk8s.ingress.nginx` runs nginx as a child process and
swaps its configuration only after ``nginx -t`` accepts it; :mod:`~pyk8s.ingress.controller`
watches the objects, debounces changes, reloads, and writes each Ingress's status.
"""
