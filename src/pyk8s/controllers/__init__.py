"""pyk8s.controllers: the controller manager's controllers, one module each, on a small
controller-runtime (``runtime``): level-based reconcilers fed by shared informers through
rate-limited work queues, as sample-controller and controller-runtime do upstream."""
