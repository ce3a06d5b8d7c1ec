"""The ``pyk8s`` command: one entry point for every component, k3s-style.

Errors a user can act on (a locked or corrupt database, a bad endpoint, a port in use)
are printed as one line, not as a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pyk8s import __version__
from pyk8s.storage import StoreError, open_store

if TYPE_CHECKING:
    from pyk8s.client.leaderelection import LeaseSettings
    from pyk8s.server.cloud_controller_manager import Options as CloudControllerOptions
    from pyk8s.server.dns import Options as DNSOptions
    from pyk8s.server.proxy import Options as ProxyOptions
    from pyk8s.server.scheduler import Options as SchedulerOptions


def _add_server_flags(p: argparse.ArgumentParser) -> None:
    from pyk8s.server.paths import default_data_dir

    p.add_argument(
        "--data-dir",
        "-d",
        type=Path,
        default=default_data_dir(),
        help="state, certificates and kubeconfig (default: %(default)s)",
    )
    p.add_argument(
        "--datastore-endpoint",
        default="",
        metavar="URL",
        help="sqlite:///path/state.db (default, in the data dir) or etcd://host:2379[,host:2379]",
    )
    p.add_argument("--bind-address", default="0.0.0.0")
    p.add_argument(
        "--https-listen-port",
        "--secure-port",
        type=int,
        default=6443,
        help="the API server's HTTPS port (k3s's name; kube-apiserver's --secure-port)",
    )
    p.add_argument("--advertise-address", default="")
    p.add_argument("--service-cidr", default="10.43.0.0/16")
    p.add_argument(
        "--token-auth-file",
        type=Path,
        default=None,
        help='static bearer tokens (CSV: token,user,uid,"group1,group2")',
    )
    p.add_argument(
        "--enable-admission-plugins",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="admission plugins to enable on top of the default ones (upstream names)",
    )
    p.add_argument(
        "--disable-admission-plugins",
        action="append",
        default=[],
        metavar="NAME[,NAME]",
        help="default admission plugins to turn off (upstream names)",
    )
    p.add_argument(
        "--admission-control-config-file",
        default="",
        metavar="FILE",
        help="an AdmissionConfiguration (apiserver.config.k8s.io/v1) configuring admission "
        "plugins, e.g. PodSecurity's cluster defaults and exemptions",
    )
    p.add_argument(
        "--authorization-mode",
        default="Node,RBAC",
        metavar="MODE[,MODE]",
        help="authorizers, in order (AlwaysAllow, AlwaysDeny, Node, RBAC); members of "
        "system:masters are always allowed (default: %(default)s)",
    )
    p.add_argument(
        "--kubelet-certificate-authority",
        default=None,
        metavar="FILE",
        help="verify kubelets' serving certificates against this CA (pyk8s server: the "
        "cluster CA, whose kubelet-serving signer issues them; pyk8s apiserver and an "
        'empty value "": not verified)',
    )
    p.add_argument(
        "--anonymous-auth",
        nargs="?",
        const="true",
        default="true",
        choices=("true", "false"),
        help="requests without credentials are system:anonymous, for authorization to "
        "decide (false: 401) (default: %(default)s)",
    )
    p.add_argument(
        "--write-kubeconfig",
        "-o",
        type=Path,
        default=None,
        help="where to write the admin kubeconfig (default: DATA_DIR/kubeconfig.yaml)",
    )
    p.add_argument(
        "--max-requests-inflight",
        type=int,
        default=400,
        metavar="N",
        help="most non-mutating requests served at once; more are answered 429 "
        "(0: no limit; default: %(default)s)",
    )
    p.add_argument(
        "--max-mutating-requests-inflight",
        type=int,
        default=200,
        metavar="N",
        help="most mutating requests served at once; more are answered 429 "
        "(0: no limit; default: %(default)s)",
    )
    p.add_argument(
        "--enable-priority-and-fairness",
        nargs="?",
        const="true",
        default="true",
        choices=("true", "false"),
        help="API Priority and Fairness: FlowSchemas and PriorityLevelConfigurations share "
        "the sum of the two in-flight limits out, queue and reject; false: the two limits "
        "answer 429 themselves (default: %(default)s)",
    )
    p.add_argument(
        "--audit-policy-file",
        default="",
        metavar="FILE",
        help="an audit.k8s.io/v1 Policy: which requests are logged at which level "
        "(none: nothing is audited)",
    )
    p.add_argument(
        "--audit-log-path",
        default="",
        metavar="PATH",
        help="audit events as JSON lines (-: stdout)",
    )
    p.add_argument(
        "--audit-log-maxsize", type=int, default=0, metavar="MB", help="rotate at MB (100)"
    )
    p.add_argument(
        "--audit-log-maxbackup",
        type=int,
        default=0,
        metavar="N",
        help="rotated files kept (0: all)",
    )
    p.add_argument(
        "--audit-log-maxage",
        type=int,
        default=0,
        metavar="DAYS",
        help="days rotated files are kept",
    )
    p.add_argument(
        "--encryption-provider-config",
        default="",
        metavar="FILE",
        help="an EncryptionConfiguration (apiserver.config.k8s.io/v1): resources encrypted at rest",
    )
    p.add_argument(
        "--secrets-encryption",
        action="store_true",
        help="encrypt secrets at rest with a generated aescbc key (see pyk8s secrets-encrypt)",
    )
    p.add_argument(
        "--requestheader-client-ca-file",
        type=Path,
        default=None,
        metavar="FILE",
        help="the CA of front proxies trusted to assert users in request headers "
        "(default: the data dir's front-proxy-ca.crt)",
    )
    for name, default in (
        ("allowed-names", "front-proxy-client"),
        ("username-headers", "X-Remote-User"),
        ("group-headers", "X-Remote-Group"),
        ("extra-headers-prefix", "X-Remote-Extra-"),
    ):
        p.add_argument(
            f"--requestheader-{name}",
            default=None,
            metavar="A[,B]",
            help=f"upstream's flag (default: {default})",
        )
    p.add_argument(
        "--apiserver-workers",
        type=int,
        default=1,
        metavar="N",
        help="API server processes serving the port over the one SQLite file (each with "
        "its own watch cache, ~50 MiB more each; SQLite only; /metrics answers for the "
        "process a connection reached) (default: %(default)s)",
    )
    p.add_argument("--log-level", default="info")


def _names(value: str | None) -> tuple[str, ...] | None:
    """A comma-separated flag value (None when the flag was not given)."""
    return None if value is None else tuple(n.strip() for n in value.split(",") if n.strip())


def _add_manager_flags(parser: argparse.ArgumentParser, *, port: int) -> None:
    """The flags a leader-elected controller manager shares with the cloud one."""
    parser.add_argument("--kubeconfig", type=Path, default=None)
    parser.add_argument(
        "--controllers",
        default="*",
        help="comma-separated; * for all, -name to disable one (default: *)",
    )
    _add_leader_election_flags(parser)
    parser.add_argument("--bind-address", default="127.0.0.1")
    parser.add_argument(
        "--secure-port",
        "--port",
        dest="port",
        type=int,
        default=port,
        help="/healthz and /metrics (served over HTTP; default: %(default)s)",
    )
    parser.add_argument("--log-level", default="info")


def _add_leader_election_flags(parser: argparse.ArgumentParser) -> None:
    """Upstream's ``--leader-elect`` and its timings (Go durations, upstream's defaults),
    and pyk8s's ``--hostname-override`` for the identity (``<host>_<uuid>``)."""
    parser.add_argument("--leader-elect", default="true", choices=("true", "false"))
    parser.add_argument("--leader-elect-lease-duration", default="15s", metavar="DURATION")
    parser.add_argument("--leader-elect-renew-deadline", default="10s", metavar="DURATION")
    parser.add_argument("--leader-elect-retry-period", default="2s", metavar="DURATION")
    parser.add_argument(
        "--hostname-override",
        default="",
        help="the host name in the leader-election identity (pyk8s server passes its "
        "--node-name, so servers sharing a host tell apart; default: this host's name)",
    )


def _lease_settings(args: argparse.Namespace) -> LeaseSettings:
    """The ``--leader-elect-*`` timings; ValueError naming the flag, or client-go's
    complaint about their combination."""
    from pyk8s.client.leaderelection import LeaseSettings
    from pyk8s.server.component import parse_duration

    return LeaseSettings(
        parse_duration(args.leader_elect_lease_duration, "leader-elect-lease-duration"),
        parse_duration(args.leader_elect_renew_deadline, "leader-elect-renew-deadline"),
        parse_duration(args.leader_elect_retry_period, "leader-elect-retry-period"),
        host=args.hostname_override,
    )


def _add_pass_through(
    p: argparse.ArgumentParser, flag: str, component: str, note: str = ""
) -> None:
    """k3s's ``--<flag>-arg FLAG=VALUE`` (repeatable): ``--FLAG VALUE`` for ``component``."""
    p.add_argument(
        f"--{flag}-arg",
        dest=f"{component.replace('-', '_')}_args",
        action="append",
        default=[],
        metavar="FLAG=VALUE",
        help=f"pass --FLAG VALUE to pyk8s {component} {note}".rstrip(),
    )


def _add_agent_flags(p: argparse.ArgumentParser, in_server: bool = False) -> None:
    """The node agent's flags (k3s/kubelet names); ``pyk8s server`` passes them on."""
    _add_pass_through(p, "kubelet", "kubelet")
    _add_pass_through(p, "kube-proxy", "proxy")
    p.add_argument("--node-name", default="", help="default: this host's name")
    p.add_argument("--node-ip", default="", help="default: the address of the default route")
    p.add_argument(
        "--container-runtime-endpoint",
        default="",
        metavar="SOCKET",
        help="use an existing CRI socket instead of running containerd",
    )
    p.add_argument("--node-label", action="append", default=[], metavar="K=V")
    p.add_argument("--node-taint", action="append", default=[], metavar="K=V:EFFECT")
    p.add_argument("--cluster-dns", default="", help="DNS server IP(s) for ClusterFirst pods")
    p.add_argument(
        "--cluster-domain",
        # an agent's default is the server's (pyk8s.server.clusterconfig)
        default="" if in_server else "cluster.local",
        help="default: cluster.local" + ("; an agent's: the server's" if in_server else ""),
    )
    p.add_argument(
        "--insecure-registry",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="a registry containerd reaches over plain HTTP (repeatable)",
    )
    p.add_argument(
        "--default-runtime",
        default="",
        choices=["runc", "crun"],
        help="the OCI runtime of the node's containerd for pods (default: runc; each "
        "installed one is a runtime handler)",
    )
    p.add_argument(
        "--default-local-storage-path",
        type=Path,
        default=None,
        metavar="DIR",
        help="where the local-path provisioner makes volumes (default: DATA_DIR/storage)",
    )
    if in_server:
        return
    p.add_argument(
        "--node-routes",
        action="store_true",
        help="route other nodes' pod CIDRs via their InternalIPs (host-gw)",
    )
    p.add_argument("--kubeconfig", type=Path, default=None)
    p.add_argument(
        "--bootstrap-kubeconfig",
        type=Path,
        default=None,
        help="TLS bootstrap: get a system:node:<name> certificate with these credentials "
        "and write --kubeconfig to use it",
    )
    p.add_argument("--cert-dir", type=Path, default=None, help="default: DATA_DIR/kubelet/pki")
    p.add_argument("--rotate-certificates", default="true", choices=("true", "false"))
    p.add_argument(
        "--rotate-server-certificates",
        default="false",
        choices=("true", "false"),
        help="serve with a certificate from the kubernetes.io/kubelet-serving signer (a CSR "
        "for the Node's addresses, renewed before expiry) instead of a self-signed one",
    )
    p.add_argument(
        "--node-routes-kubeconfig",
        type=Path,
        default=None,
        help="credentials the host-gw routes list Nodes with (default: --kubeconfig)",
    )
    p.add_argument("--pod-cidr", default="", help="default: the Node's spec.podCIDR")
    p.add_argument("--cluster-cidr", default="10.42.0.0/16", help="all nodes' pod CIDRs")
    p.add_argument("--service-cidr", default="10.43.0.0/16", help="the Services' ClusterIPs")
    p.add_argument("--cni-bridge", default="cni0")
    p.add_argument("--log-root", type=Path, default=Path("/var/log/pods"))
    p.add_argument("--healthz-bind-address", default="127.0.0.1")
    p.add_argument("--healthz-port", type=int, default=10248, help="/healthz and /metrics")
    p.add_argument("--address", default="0.0.0.0", help="the kubelet's HTTPS server")
    p.add_argument("--port", type=int, default=10250, help="logs, exec, port-forward, stats")
    p.add_argument("--log-level", default="info")


def _add_snapshot_server_flags(p: argparse.ArgumentParser) -> None:
    """k3s's snapshot and restore flags of ``server``."""
    from pyk8s.server.snapshots import DEFAULT_CRON, DEFAULT_RETENTION

    p.add_argument(
        "--etcd-snapshot-schedule-cron",
        default=DEFAULT_CRON,
        metavar="SPEC",
        help="datastore snapshots at these times, UTC (default: %(default)s)",
    )
    p.add_argument(
        "--etcd-snapshot-retention",
        type=int,
        default=DEFAULT_RETENTION,
        metavar="N",
        help="scheduled snapshots kept (default: %(default)s)",
    )
    p.add_argument("--etcd-disable-snapshots", action="store_true")
    p.add_argument(
        "--etcd-snapshot-dir",
        type=Path,
        default=None,
        metavar="DIR",
        help="default: DATA_DIR/server/db/snapshots",
    )
    p.add_argument(
        "--cluster-reset",
        action="store_true",
        help="with --cluster-reset-restore-path: restore the datastore and exit",
    )
    p.add_argument("--cluster-reset-restore-path", type=Path, default=None, metavar="FILE")


def _add_embedded_etcd_flags(p: argparse.ArgumentParser) -> None:
    """k3s's HA flags: an embedded etcd member (see pyk8s.server.embedded_etcd)."""
    p.add_argument(
        "--cluster-init",
        action="store_true",
        help="start a new cluster on an embedded etcd member (other servers join it)",
    )
    p.add_argument(
        "--server",
        "-s",
        default="",
        metavar="URL",
        help="join the cluster of the server at https://HOST:6443 (with --token)",
    )
    p.add_argument(
        "--token",
        "-t",
        default="",
        help="with --server: the server token (DATA_DIR/server/server-token of a server)",
    )
    p.add_argument("--token-file", type=Path, default=None, metavar="FILE")
    p.add_argument(
        "--etcd-client-port",
        type=int,
        default=2379,
        metavar="PORT",
        help="the embedded etcd's client port (default: %(default)s)",
    )
    p.add_argument(
        "--etcd-peer-port",
        type=int,
        default=2380,
        metavar="PORT",
        help="the embedded etcd's peer port (default: %(default)s)",
    )


def _embedded_etcd_options(args: argparse.Namespace) -> dict[str, Any]:
    if args.command != "server":
        return {}
    token = args.token or (args.token_file.read_text().strip() if args.token_file else "")
    return {
        "cluster_init": args.cluster_init,
        "join_server": args.server,
        "join_token": token,
        "etcd_client_port": args.etcd_client_port,
        "etcd_peer_port": args.etcd_peer_port,
    }


def _add_etcd_snapshot(sub: Any) -> None:
    """``pyk8s etcd-snapshot save|ls|delete|prune`` (k3s's flags)."""
    from pyk8s.server.paths import default_data_dir
    from pyk8s.server.snapshots import DEFAULT_RETENTION, ON_DEMAND_NAME

    snap = sub.add_parser("etcd-snapshot", help="save, list, delete and prune datastore snapshots")
    snap_sub = snap.add_subparsers(dest="snapshot_command", metavar="ACTION", required=True)
    actions = {
        "save": snap_sub.add_parser("save", help="take a snapshot now"),
        "ls": snap_sub.add_parser("ls", aliases=["list"], help="list the snapshots"),
        "delete": snap_sub.add_parser("delete", help="delete snapshots by name"),
        "prune": snap_sub.add_parser("prune", help="keep only the newest N of one name"),
    }
    actions["delete"].add_argument("names", nargs="+", metavar="NAME")
    actions["prune"].add_argument(
        "--snapshot-retention", "--etcd-snapshot-retention", type=int, default=DEFAULT_RETENTION
    )
    for action in actions.values():
        action.add_argument("--data-dir", "-d", type=Path, default=default_data_dir())
        action.add_argument("--datastore-endpoint", default="", metavar="URL")
        action.add_argument("--etcd-snapshot-dir", "--dir", type=Path, default=None, metavar="DIR")
        action.add_argument("--name", default=ON_DEMAND_NAME, help="(default: %(default)s)")
        action.add_argument("--node-name", default="")


def _snapshot_target(args: argparse.Namespace) -> Any:
    from pyk8s.server.apiserver import Options
    from pyk8s.server.snapshots import Target, default_dir

    endpoint = Options(data_dir=args.data_dir, datastore_endpoint=args.datastore_endpoint).endpoint
    directory = args.etcd_snapshot_dir or default_dir(args.data_dir)
    return Target(endpoint, directory, getattr(args, "node_name", ""))


def _add_token_and_certificate(sub: Any) -> None:
    """``pyk8s token create|list|delete|rotate`` and ``pyk8s certificate
    check|rotate|rotate-ca`` (k3s's commands)."""
    token = sub.add_parser("token", help="manage bootstrap (join) tokens")
    token_sub = token.add_subparsers(dest="token_command", required=True)
    actions = {
        "create": token_sub.add_parser("create", help="create a join token"),
        "list": token_sub.add_parser("list", aliases=["ls"], help="list the join tokens"),
        "delete": token_sub.add_parser("delete", help="delete join tokens by id or token"),
        "rotate": token_sub.add_parser("rotate", help="replace the server's own join token"),
    }
    for name, action in actions.items():
        action.set_defaults(token_command=name)
        action.add_argument("--data-dir", "-d", type=Path, default=None)
        action.add_argument(
            "--kubeconfig", type=Path, default=None, help="DATA_DIR/kubeconfig.yaml"
        )
    actions["create"].add_argument("token", nargs="?", default="", help="<id>.<secret>")
    actions["create"].add_argument("--ttl", default="24h", help="lifetime (0: never expires)")
    actions["create"].add_argument("--description", default="")
    actions["create"].add_argument(
        "--groups", default="", help="extra groups (default system:bootstrappers:pyk8s:…)"
    )
    actions["create"].add_argument("--usages", default="signing,authentication")
    actions["delete"].add_argument("tokens", nargs="+", metavar="TOKEN")
    actions["rotate"].add_argument("--new-token", default="", help="<id>.<secret>")
    cert = sub.add_parser("certificate", help="check and rotate component certificates")
    cert_sub = cert.add_subparsers(dest="certificate_command", required=True)
    for name, text in (
        ("check", "print each component certificate's subject and expiry"),
        ("rotate", "set certificates aside; the next server start issues new ones"),
    ):
        action = cert_sub.add_parser(name, help=text)
        action.add_argument("--data-dir", "-d", type=Path, default=None)
        action.add_argument(
            "--service", "-s", action="append", default=[], help="only these (repeatable)"
        )
        if name == "check":
            action.add_argument("--output", "-o", default="text", choices=("text", "table"))
    rotate_ca = cert_sub.add_parser(
        "rotate-ca", help="install a new cluster CA, cross-signed by the current one"
    )
    rotate_ca.add_argument("--data-dir", "-d", type=Path, default=None)
    rotate_ca.add_argument(
        "--path", type=Path, required=True, help="directory with the new CA in tls/ca.crt, ca.key"
    )
    rotate_ca.add_argument(
        "--force", action="store_true", help="install a CA the current one did not cross-sign"
    )
    rotate_ca.add_argument(
        "--generate",
        action="store_true",
        help="only write a new CA cross-signed by the current one to PATH/tls",
    )


def _token(args: argparse.Namespace) -> int:
    from pyk8s.server.component import parse_duration
    from pyk8s.server.paths import default_data_dir
    from pyk8s.server.tokens import DEFAULT_USAGES, TokenError, run

    data_dir = args.data_dir or default_data_dir()
    create = args.token_command == "create"
    try:
        out = asyncio.run(
            run(
                args.token_command,
                kubeconfig=args.kubeconfig or data_dir / "kubeconfig.yaml",
                data_dir=data_dir,
                tokens=args.tokens
                if args.token_command == "delete"
                else [args.token]
                if create and args.token
                else [],
                ttl=parse_duration(args.ttl, "ttl") if create else 0.0,
                description=args.description if create else "",
                groups=_plugin_names([args.groups]) if create else (),
                usages=_plugin_names([args.usages]) if create else DEFAULT_USAGES,
                new=getattr(args, "new_token", ""),
            )
        )
    except (TokenError, ValueError) as err:
        print(f"pyk8s token: error: {err}", file=sys.stderr)
        return 1
    print(out)
    return 0


def _certificate(args: argparse.Namespace) -> int:
    import datetime

    from pyk8s.server.certcheck import check, format_check, rotate
    from pyk8s.server.paths import default_data_dir

    data_dir = args.data_dir or default_data_dir()
    if args.certificate_command == "rotate-ca":
        return _rotate_ca(args, data_dir)
    services = _plugin_names(args.service)
    try:
        if args.certificate_command == "check":
            now = datetime.datetime.now(datetime.UTC)
            print(format_check(check(data_dir, services), args.output, now))
        else:
            backup = rotate(data_dir, services)
            print(f"certificates moved to {backup}; restart pyk8s server to issue new ones")
    except (OSError, ValueError) as err:
        print(f"pyk8s certificate: error: {err}", file=sys.stderr)
        return 1
    return 0


def _rotate_ca(args: argparse.Namespace, data_dir: Path) -> int:
    from pyk8s.server import rotateca

    try:
        if args.generate:
            tls = rotateca.generate(data_dir, args.path)
            print(f"new CA written to {tls} (ca.crt, ca.key), cross-signed by the current one;")
            print(f"install it with: pyk8s certificate rotate-ca --path {args.path}")
            return 0
        staged = rotateca.load_staged(data_dir, args.path, force=args.force)
        backup = rotateca.install(data_dir, staged)
    except (OSError, rotateca.RotateError) as err:
        print(f"pyk8s certificate: error: {err}", file=sys.stderr)
        return 1
    print(
        f"cluster CA is now {staged.ca.subject.rfc4514_string()}; "
        f"{staged.previous.subject.rfc4514_string()} stays trusted; old files in {backup}"
    )
    if not staged.cross_signed:
        print("the new CA is not cross-signed: clients that trust only the old CA need the new one")
    print(
        "a running pyk8s server re-issues its certificates from the new CA within seconds; "
        f"agents joining from now on need the new token in {data_dir / 'server' / 'node-token'}"
    )
    return 0


def _etcd_snapshot(args: argparse.Namespace) -> int:
    from pyk8s.server import snapshots

    target = _snapshot_target(args)
    try:
        if args.snapshot_command == "save":
            snap = asyncio.run(snapshots.save(target, args.name))
            print(f"Snapshot {snap.name} saved.")
        elif args.snapshot_command in ("ls", "list"):
            print(snapshots.format_list(snapshots.list_snapshots(target.directory)))
        elif args.snapshot_command == "delete":
            for name in args.names:
                path = snapshots.find(target, name)
                if path is None:
                    print(f"pyk8s etcd-snapshot: error: snapshot {name} not found", file=sys.stderr)
                    return 1
                path.unlink()
                print(f"Snapshot {path.name} deleted.")
        else:
            for s in snapshots.prune(target.directory, args.name, args.snapshot_retention):
                print(f"Snapshot {s.name} deleted.")
    except (StoreError, ValueError, OSError) as err:
        print(f"pyk8s etcd-snapshot: error: {err}", file=sys.stderr)
        return 1
    return 0


def _killall(args: argparse.Namespace) -> int:
    """``pyk8s killall`` / ``pyk8s uninstall`` (k3s-killall.sh, k3s-uninstall.sh)."""
    from pyk8s.server import killall
    from pyk8s.server.paths import default_data_dir

    data_dir = (args.data_dir or default_data_dir()).resolve()
    if os.geteuid() != 0:
        print(f"pyk8s {args.command}: error: must run as root", file=sys.stderr)
        return 1
    if args.command == "uninstall" and not args.yes:
        if not sys.stdin.isatty():
            print(
                f"pyk8s uninstall: error: refusing to remove {data_dir} without --yes "
                "(no terminal to confirm on)",
                file=sys.stderr,
            )
            return 1
        answer = input(f"Stop pyk8s and remove {data_dir} with everything in it? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("pyk8s uninstall: nothing done")
            return 1
    run = killall.uninstall if args.command == "uninstall" else killall.killall
    report = run(data_dir)
    print(
        f"stopped {len(report.processes)} processes and {len(report.containers)} containers; "
        f"unmounted {len(report.mounts)} mounts; removed {len(report.links)} links and "
        f"{len(report.chains)} iptables chains"
        + (f"; removed {data_dir}" if args.command == "uninstall" else "")
    )
    return 0


def _cluster_reset(args: argparse.Namespace) -> int:
    """k3s's ``server --cluster-reset --cluster-reset-restore-path FILE``: restore, exit."""
    from pyk8s.server import embedded_etcd, snapshots

    member = embedded_etcd.Member.load(args.data_dir)
    if member is not None and not member.exists():
        member = None
    if args.cluster_reset_restore_path is None and member is None:
        print(
            "pyk8s server: error: --cluster-reset needs --cluster-reset-restore-path "
            f"(there is no embedded etcd member in {args.data_dir} whose membership "
            "could be reset)",
            file=sys.stderr,
        )
        return 1
    restore = args.cluster_reset_restore_path
    try:
        if member is not None:
            result = asyncio.run(embedded_etcd.cluster_reset(member, restore))
        else:
            assert restore is not None
            endpoint = _snapshot_target(args).endpoint
            result = asyncio.run(snapshots.cluster_reset_restore(endpoint, restore))
    except (StoreError, ValueError, OSError, embedded_etcd.EtcdError) as err:
        print(f"pyk8s server: error: {err}", file=sys.stderr)
        return 1
    if result is None:
        print(
            "Managed etcd cluster membership has been reset, restart without "
            "--cluster-reset flag now. Backup and delete DATA_DIR/server/db on each peer "
            "etcd server and rejoin the nodes."
        )
        return 0
    print(
        f"Restored {args.cluster_reset_restore_path}: {result.keys} keys "
        f"({result.written} written, {result.deleted} deleted). "
        "Start pyk8s server without --cluster-reset now."
    )
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pyk8s", description="Kubernetes, written in Python.")
    p.add_argument("--version", action="version", version=f"pyk8s {__version__}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    server = sub.add_parser("server", help="run the control plane on this host")
    _add_server_flags(server)
    server.add_argument(
        "--disable-agent",
        action="store_true",
        help="do not run a node agent (kubelet + containerd) on this host",
    )
    server.add_argument(
        "--csi-hostpath",
        action="store_true",
        help="run the hostpath CSI driver on this node and create its csi-hostpath "
        "StorageClass (not the default)",
    )
    _add_pass_through(server, "kube-controller-manager", "controller-manager")
    server.add_argument(
        "--cluster-cidr",
        default="10.42.0.0/16",
        help="the pods' addresses: one CIDR, or an IPv4,IPv6 pair for dual stack "
        "(with a --service-cidr pair)",
    )
    _add_pass_through(server, "kube-cloud-controller-manager", "cloud-controller-manager")
    server.add_argument(
        "--disable-cloud-controller",
        action="store_true",
        help="do not run the cloud controller manager (the local provider's load balancers)",
    )
    server.add_argument(
        "--lb-address-pool",
        action="append",
        default=[],
        metavar="FIRST-LAST|CIDR",
        help="LoadBalancer Services get addresses of these ranges, each announced by one "
        "node with ARP or NDP (MetalLB layer 2), instead of the nodes' own addresses "
        "(repeatable; IPv6 ranges give IPv6 addresses)",
    )
    _add_pass_through(server, "kube-scheduler", "scheduler")
    _add_pass_through(
        server, "kube-apiserver", "apiserver", note="(the API server runs in this process)"
    )
    _add_pass_through(
        server, "dns", "dns", note="(pyk8s's own: k3s runs CoreDNS as a pod, with no flag)"
    )
    _add_pass_through(
        server, "metrics-server", "metrics-server", note="(pyk8s's own: k3s runs it as a pod)"
    )
    _add_pass_through(server, "ingress-controller", "ingress-controller")
    server.add_argument(
        "--enable-metrics-adapter",
        action="store_true",
        help="also run pyk8s metrics-adapter (custom.metrics.k8s.io from the pods' "
        "Prometheus endpoints)",
    )
    _add_pass_through(server, "metrics-adapter", "metrics-adapter")
    server.add_argument(
        "--disable",
        action="append",
        default=[],
        metavar="NAME",
        help="do not run this bundled component (k3s's flag): ingress (alias traefik), "
        "metrics-server, coredns (pyk8s dns)",
    )
    server.add_argument(
        "--disable-scheduler", action="store_true", help="do not run the scheduler (k3s's flag)"
    )
    server.add_argument(
        "--disable-helm-controller",
        action="store_true",
        help="do not run the HelmChart controller nor register its CRDs (k3s's flag)",
    )
    _add_agent_flags(server, in_server=True)
    _add_snapshot_server_flags(server)
    _add_embedded_etcd_flags(server)
    apiserver = sub.add_parser("apiserver", help="run the API server alone")
    _add_server_flags(apiserver)
    # --apiserver-workers' extra processes, started by the API server (no help: not listed)
    worker = sub.add_parser("apiserver-worker")
    worker.add_argument("--options", type=Path, required=True)
    worker.add_argument("--log-level", default="info")
    cm = sub.add_parser("controller-manager", help="run the controllers (leader-elected)")
    _add_manager_flags(cm, port=10257)
    cm.add_argument("--horizontal-pod-autoscaler-sync-period", default="15s")
    cm.add_argument("--horizontal-pod-autoscaler-downscale-stabilization", default="5m0s")
    cm.add_argument("--horizontal-pod-autoscaler-tolerance", type=float, default=0.1)
    cm.add_argument(
        "--use-service-account-credentials",
        nargs="?",
        const="true",
        default="false",
        choices=("true", "false"),
        help="each controller writes as its own kube-system service account",
    )
    cm.add_argument("--cluster-signing-cert-file", default="", metavar="FILE")
    cm.add_argument("--cluster-signing-key-file", default="", metavar="FILE")
    cm.add_argument("--cluster-signing-duration", default="8760h0m0s")
    for signer in ("kube-apiserver-client", "kubelet-client", "kubelet-serving", "legacy-unknown"):
        for part in ("cert", "key"):
            cm.add_argument(f"--cluster-signing-{signer}-{part}-file", default="", metavar="FILE")
    cm.add_argument(
        "--cluster-cidr", default="10.42.0.0/16", help="node IPAM: one CIDR or a v4,v6 pair"
    )
    cm.add_argument("--node-cidr-mask-size-ipv4", type=int, default=24)
    cm.add_argument("--node-cidr-mask-size-ipv6", type=int, default=64)
    cm.add_argument(  # pyk8s server's cloud controllers, run in this process
        "--embedded-cloud-controller-arg", action="append", default=[], help=argparse.SUPPRESS
    )
    cm.add_argument(  # pyk8s server's scheduler, run in this process (pyk8s.server.cohost)
        "--embedded-scheduler-arg", action="append", default=[], help=argparse.SUPPRESS
    )
    ccm = sub.add_parser(
        "cloud-controller-manager", help="run the cloud controllers for a provider (leader-elected)"
    )
    _add_manager_flags(ccm, port=10258)
    ccm.add_argument("--cloud-provider", default="local", help="local (default) or fake")
    ccm.add_argument(
        "--lb-address-pool",
        action="append",
        default=[],
        metavar="FIRST-LAST|CIDR",
        help="local provider: give each LoadBalancer an address of these ranges, announced "
        "by one node with ARP or NDP (MetalLB layer 2) instead of the nodes' addresses "
        "(repeatable; IPv6 ranges give IPv6 addresses)",
    )
    ccm.add_argument(
        "--lb-class",
        default="",
        metavar="CLASS",
        help="answer only LoadBalancers of this spec.loadBalancerClass (default: those "
        "without one and pyk8s.io/servicelb)",
    )
    ca = sub.add_parser(
        "cluster-autoscaler", help="run the cluster autoscaler over simulated node groups"
    )
    ca.add_argument("--kubeconfig", type=Path, default=None)
    ca.add_argument("--config", type=Path, required=True, metavar="GROUPS.yaml")
    ca.add_argument("--scan-interval", default="10s")
    ca.add_argument(
        "--frequent-loops-enabled",
        type=lambda v: v.lower() == "true",
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="start a loop at once after a scale-up and when a pod becomes unschedulable",
    )
    ca.add_argument("--expander", default="random", help="random, least-waste, priority")
    ca.add_argument(
        "--scale-down-enabled", type=lambda v: v.lower() == "true", default=True, metavar="BOOL"
    )
    ca.add_argument("--scale-down-utilization-threshold", type=float, default=0.5)
    ca.add_argument("--scale-down-unneeded-time", default="10m")
    ca.add_argument("--scale-down-delay-after-add", default="10m")
    ca.add_argument("--max-graceful-termination-sec", type=int, default=600)
    ca.add_argument("--max-pod-eviction-time", default="2m")
    ca.add_argument("--status-config-map-name", default="cluster-autoscaler-status")
    ca.add_argument("--address", default="127.0.0.1:8085", help="/healthz and /metrics")
    ca.add_argument("--leader-elect", default="true", choices=("true", "false"))
    ca.add_argument("--kube-api-qps", type=float, default=500.0)
    ca.add_argument("--kube-api-burst", type=int, default=1000)
    ca.add_argument("--log-level", default="info")
    sim = sub.add_parser("sim-nodes", help="run N simulated nodes (kwok-style)")
    sim.add_argument("--kubeconfig", type=Path, default=None)
    sim.add_argument("--count", type=int, default=1)
    sim.add_argument("--name-prefix", default="sim-")
    sim.add_argument("--cpu", default="8")
    sim.add_argument("--memory", default="32Gi")
    sim.add_argument("--pods", type=int, default=110)
    sim.add_argument("--ephemeral-storage", default="100Gi")
    sim.add_argument("--extended", action="append", default=[], metavar="NAME=QTY")
    sim.add_argument("--labels", default="", metavar="K=V,...")
    sim.add_argument("--taints", default="", metavar="K=V:EFFECT,...")
    sim.add_argument("--bind-address", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=10260, help="/healthz and /metrics (HTTP)")
    sim.add_argument("--kube-api-qps", type=float, default=500.0)
    sim.add_argument("--kube-api-burst", type=int, default=1000)
    sim.add_argument(
        "--node-lease-duration-seconds",
        type=int,
        default=40,
        help="each node's Lease duration, renewed every quarter of it; 0: no Leases "
        "(kwok's flag; scheduler_perf's nodes have none)",
    )
    sim.add_argument("--log-level", default="info")
    from pyk8s.server import ingress_controller

    ingress = sub.add_parser("ingress-controller", help="serve Ingresses with nginx")
    ingress_controller.add_arguments(ingress)
    from pyk8s.server import csi_hostpath

    csi = sub.add_parser(
        "csi-hostpath", help="the hostpath CSI driver, its registrar and sidecar loops"
    )
    csi_hostpath.add_arguments(csi)
    agent = sub.add_parser("agent", help="join this host to a cluster as a worker node")
    agent.add_argument("--server", "-s", required=True, metavar="URL", help="https://HOST:6443")
    agent.add_argument("--token", "-t", default="", help="the server's DATA_DIR/server/node-token")
    agent.add_argument("--token-file", type=Path, default=None)
    agent.add_argument(
        "--lb-server-port",
        type=int,
        default=6444,
        metavar="PORT",
        help="the loopback load balancer in front of the API servers (default: %(default)s)",
    )
    agent.add_argument(
        "--data-dir", "-d", type=Path, default=None, help="default: /var/lib/pyk8s/agent"
    )
    agent.add_argument("--log-level", default="info")
    _add_agent_flags(agent, in_server=True)
    proxy = sub.add_parser("proxy", help="run kube-proxy (nftables or iptables mode) for this node")
    proxy.add_argument("--kubeconfig", type=Path, default=None)
    proxy.add_argument(
        "--proxy-mode",
        dest="mode",
        choices=("nftables", "iptables"),
        default="nftables",
        help="how services are programmed (default: %(default)s); from pyk8s server/agent: "
        "--kube-proxy-arg proxy-mode=MODE",
    )
    proxy.add_argument("--hostname-override", dest="node_name", default="")
    proxy.add_argument("--cluster-cidr", default="10.42.0.0/16")
    proxy.add_argument("--iptables-masquerade-bit", dest="masquerade_bit", type=int, default=14)
    proxy.add_argument("--node-ip", dest="node_ips", action="append", default=[])
    proxy.add_argument(
        "--nodeport-addresses",
        type=lambda s: [x for x in s.split(",") if x],
        default=[],
        help="comma-separated IPs NodePorts answer on (default: the node's addresses)",
    )
    proxy.add_argument(
        "--iptables-min-sync-period", dest="min_sync_period", type=float, default=1.0
    )
    proxy.add_argument("--iptables-sync-period", dest="sync_period", type=float, default=30.0)
    proxy.add_argument(
        "--healthz-bind-address",
        dest="bind_address",
        default="0.0.0.0",
        metavar="IP[:PORT]",
        help="/healthz (and /metrics, unless --metrics-bind-address): kube-proxy's "
        "IP:PORT, or an IP with --healthz-port",
    )
    proxy.add_argument("--healthz-port", dest="port", type=int, default=10256)
    proxy.add_argument(
        "--metrics-bind-address",
        default="",
        metavar="IP:PORT",
        help="serve /metrics on its own listener too, as kube-proxy (upstream's default "
        "127.0.0.1:10249; default here: only on the health port)",
    )
    proxy.add_argument(
        "--disable-network-policy",
        action="store_true",
        help="do not enforce NetworkPolicies on this node (the pyk8s-netpol nftables table)",
    )
    proxy.add_argument("--cleanup", action="store_true", help="remove every rule and exit")
    proxy.add_argument("--log-level", default="info")
    ms = sub.add_parser("metrics-server", help="the metrics.k8s.io API (kubectl top, HPA)")
    ms.add_argument("--kubeconfig", type=Path, default=None)
    ms.add_argument("--bind-address", default="0.0.0.0")
    ms.add_argument("--secure-port", type=int, default=4443, help="0: any free port")
    ms.add_argument("--metric-resolution", default="15s", metavar="DURATION")
    ms.add_argument("--kubelet-insecure-tls", action="store_true")
    ms.add_argument("--kubelet-client-certificate", type=Path, default=None)
    ms.add_argument("--kubelet-client-key", type=Path, default=None)
    ms.add_argument("--kubelet-certificate-authority", type=Path, default=None)
    ms.add_argument(
        "--kubelet-preferred-address-types",
        default="Hostname,InternalDNS,InternalIP,ExternalDNS,ExternalIP",
    )
    ms.add_argument("--kubelet-request-timeout", default="10s", metavar="DURATION")
    ms.add_argument("--tls-cert-file", type=Path, default=None)
    ms.add_argument("--tls-private-key-file", type=Path, default=None)
    ms.add_argument("--cert-dir", type=Path, default=Path("apiserver.local.config/certificates"))
    ms.add_argument("--health-bind-address", default="0.0.0.0")
    ms.add_argument("--health-port", type=int, default=10263, help="/healthz and /metrics")
    ms.add_argument(
        "--advertise-address",
        default="",
        help="register kube-system/metrics-server and the APIService at this address",
    )
    ms.add_argument("--log-level", default="info")
    ma = sub.add_parser(
        "metrics-adapter", help="custom.metrics.k8s.io from the pods' Prometheus endpoints"
    )
    ma.add_argument("--kubeconfig", type=Path, default=None)
    ma.add_argument("--bind-address", default="0.0.0.0")
    ma.add_argument("--secure-port", type=int, default=6443, help="0: any free port")
    ma.add_argument("--scrape-interval", default="15s", metavar="DURATION")
    ma.add_argument("--scrape-timeout", default="10s", metavar="DURATION")
    ma.add_argument("--tls-cert-file", type=Path, default=None)
    ma.add_argument("--tls-private-key-file", type=Path, default=None)
    ma.add_argument("--cert-dir", type=Path, default=Path("apiserver.local.config/certificates"))
    ma.add_argument("--health-bind-address", default="0.0.0.0")
    ma.add_argument("--health-port", type=int, default=10264, help="/healthz and /metrics")
    ma.add_argument(
        "--advertise-address",
        default="",
        help="register kube-system/custom-metrics-apiserver and the APIServices at this address",
    )
    ma.add_argument("--log-level", default="info")
    dns = sub.add_parser("dns", help="cluster DNS (the CoreDNS role)")
    dns.add_argument("--kubeconfig", type=Path, default=None)
    dns.add_argument("--bind-address", default="0.0.0.0")
    dns.add_argument("--port", type=int, default=53)
    dns.add_argument("--cluster-domain", default="cluster.local")
    dns.add_argument(
        "--upstream", dest="upstreams", action="append", default=[], metavar="IP[:PORT]"
    )
    dns.add_argument("--resolv-conf", type=Path, default=Path("/etc/resolv.conf"))
    dns.add_argument("--forward-timeout", type=float, default=2.0)
    dns.add_argument("--ttl", type=int, default=5)
    dns.add_argument("--health-bind-address", default="0.0.0.0")
    dns.add_argument("--health-port", type=int, default=8080, help="/healthz and /metrics")
    dns.add_argument(
        "--ready-port",
        type=int,
        default=0,
        help="also serve /ready alone on this port (CoreDNS's ready plugin: 8181); "
        "0: only on the health port",
    )
    dns.add_argument(
        "--pods",
        choices=("insecure", "verified", "disabled"),
        default="insecure",
        help="<a-b-c-d>.<ns>.pod names, as CoreDNS's kubernetes plugin: insecure (any "
        "address, k3s's setting), verified (only a pod of that namespace's; watches pods), "
        "disabled",
    )
    dns.add_argument(
        "--cluster-ip", default="", help="publish kube-system/kube-dns at this ClusterIP"
    )
    dns.add_argument(
        "--advertise-address", default="", help="publish this node's kube-dns endpoint here"
    )
    dns.add_argument("--node-name", default="", help="default: the host name")
    dns.add_argument("--log-level", default="info")
    kubelet = sub.add_parser("kubelet", help="run the node agent (kubelet + containerd)")
    kubelet.add_argument(
        "--data-dir",
        "-d",
        type=Path,
        default=None,
        help="the node's state (default: /var/lib/pyk8s/agent)",
    )
    _add_agent_flags(kubelet)
    kubelet.add_argument(
        "--cloud-provider",
        default="",
        choices=("", "external"),
        help="external: register tainted uninitialized for the cloud controller manager",
    )
    for guest in ("proxy", "dns"):  # the node's proxy and DNS, run in this process
        kubelet.add_argument(  # (pyk8s server and agent: pyk8s.server.cohost)
            f"--embedded-{guest}-arg", action="append", default=[], help=argparse.SUPPRESS
        )
    sched = sub.add_parser("scheduler", help="run the scheduler (leader-elected)")
    sched.add_argument("--kubeconfig", type=Path, default=None)
    sched.add_argument("--config", type=Path, default=None, help="KubeSchedulerConfiguration")
    _add_leader_election_flags(sched)
    sched.add_argument("--bind-address", default="127.0.0.1")
    sched.add_argument(
        "--secure-port",
        "--port",
        dest="port",
        type=int,
        default=10259,
        help="/healthz and /metrics (served over HTTP; default: %(default)s)",
    )
    sched.add_argument("--kube-api-qps", type=float, default=None, help="default 50 (upstream)")
    sched.add_argument("--kube-api-burst", type=int, default=None, help="default 100 (upstream)")
    sched.add_argument("--log-level", default="info")
    kubectl = sub.add_parser(
        "kubectl", help="run kubectl with the server's admin kubeconfig", add_help=False
    )
    kubectl.add_argument("args", nargs=argparse.REMAINDER)
    image = sub.add_parser("image", help="manage the node's container images")
    image_sub = image.add_subparsers(dest="image_command", metavar="ACTION", required=True)
    image_import = image_sub.add_parser(
        "import", help="load OCI or docker image archives into the node's containerd"
    )
    image_import.add_argument("archives", nargs="+", type=Path, metavar="FILE.tar")
    image_list = image_sub.add_parser("ls", help="list the node's images")
    for action in (image_import, image_list):
        action.add_argument("--data-dir", "-d", type=Path, default=None, help="the node's data dir")
        action.add_argument(
            "--container-runtime-endpoint",
            default="",
            metavar="SOCKET",
            help="an existing containerd socket (default: the one pyk8s runs for the node)",
        )
    encrypt = sub.add_parser(
        "secrets-encrypt", help="secrets encryption at rest: status and key rotation (k3s)"
    )
    encrypt_sub = encrypt.add_subparsers(dest="encrypt_command", required=True)
    for name, text in (
        ("status", "print the encryption state and keys"),
        ("enable", "encrypt secrets written from now on (aescbc first)"),
        ("disable", "store secrets written from now on as they are (identity first)"),
        ("prepare", "add a new key that decrypts but does not encrypt yet"),
        ("rotate", "make the newest key the one that encrypts"),
        ("reencrypt", "rewrite every secret with the active key, then drop the others"),
        ("rotate-keys", "a new active key and every secret rewritten with it, in one step"),
    ):
        action = encrypt_sub.add_parser(name, help=text)
        action.add_argument("--data-dir", "-d", type=Path, default=None)
        action.add_argument(
            "--kubeconfig", type=Path, default=None, help="DATA_DIR/kubeconfig.yaml"
        )
        action.add_argument("--force", "-f", action="store_true", help="skip the stage check")
        action.add_argument("--skip", action="store_true", help="reencrypt: keep the old keys")
        action.add_argument("--output", "-o", default="", choices=("", "text", "json"))
    _add_etcd_snapshot(sub)
    _add_token_and_certificate(sub)
    for name, text in (
        ("killall", "stop this node's pyk8s processes and containers and clean the host"),
        ("uninstall", "killall, then remove the data dir"),
    ):
        action = sub.add_parser(name, help=text)
        action.add_argument("--data-dir", "-d", type=Path, default=None)
        if name == "uninstall":
            action.add_argument("--yes", "-y", action="store_true", help="do not ask")
    from pyk8s.trace import command as trace_command

    trace_command.add_parser(sub)
    check = sub.add_parser(
        "datastore-check", help="open a datastore endpoint and print its revisions"
    )
    check.add_argument("--datastore-endpoint", required=True, metavar="URL")
    return p


async def _datastore_check(url: str) -> None:
    store = await open_store(url)
    try:
        rev = await store.current_revision()
        compacted = await store.compacted_revision()
        keys = await store.count("/")
        print(f"ok: revision {rev}, compacted {compacted}, {keys} keys")
    finally:
        await store.close()


def _plugin_names(values: Sequence[str]) -> tuple[str, ...]:
    """A repeated, comma-separated flag as one list (pflag's StringSlice)."""
    return tuple(n.strip() for v in values for n in v.split(",") if n.strip())


def _admission_flag_errors(enable: Sequence[str], disable: Sequence[str]) -> str:
    """kube-apiserver's check of the admission flags (AdmissionOptions.Validate), as it
    prints it: one message, or several in brackets; empty when the flags are fine."""
    from pyk8s.apiserver.admission import plugins

    known = plugins()
    errs = [f'enable-admission-plugins plugin "{n}" is unknown' for n in enable if n not in known]
    errs += [
        f'disable-admission-plugins plugin "{n}" is unknown' for n in disable if n not in known
    ]
    both = sorted(set(enable) & set(disable))
    if both:
        errs.append(
            f"[{' '.join(both)}] in enable-admission-plugins and disable-admission-plugins "
            "overlapped"
        )
    if len(errs) > 1:
        return "[" + ", ".join(errs) + "]"
    return errs[0] if errs else ""


def _admission_config(
    config_file: str, enable: Sequence[str], disable: Sequence[str]
) -> dict[str, Any] | str:
    """The enabled plugins' configuration from ``--admission-control-config-file``, or
    kube-apiserver's text for why it cannot start with that file."""
    from pyk8s.apiserver.admission import enabled_plugins
    from pyk8s.apiserver.admission.config import AdmissionConfigError, load_admission_config

    try:
        return load_admission_config(config_file, enabled_plugins(enable, disable))
    except AdmissionConfigError as err:
        return str(err)


def _passed_through(pairs: list[str]) -> list[str]:
    """k3s's ``--kube-X-arg FLAG=VALUE`` as the component's own ``--FLAG VALUE``."""
    out: list[str] = []
    for pair in pairs:
        flag, sep, value = pair.partition("=")
        out.append(f"--{flag.lstrip('-')}")
        if sep:
            out.append(value)
    return out


def _run_apiserver(args: argparse.Namespace) -> int:
    from pyk8s.server import logs
    from pyk8s.server.agent import JoinError
    from pyk8s.server.apiserver import Options, run_until_signalled
    from pyk8s.server.embedded_etcd import EtcdError

    if args.command == "server":
        # k3s hands its --cluster-cidr to the controller manager; a
        # --kube-controller-manager-arg cluster-cidr=... given too comes later and wins
        args.controller_manager_args.insert(0, f"cluster-cidr={args.cluster_cidr}")
    enable = _plugin_names(args.enable_admission_plugins)
    disable = _plugin_names(args.disable_admission_plugins)
    problem = _admission_flag_errors(enable, disable)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 1
    admission_config = _admission_config(args.admission_control_config_file, enable, disable)
    if isinstance(admission_config, str):
        print(f"Error: {admission_config}", file=sys.stderr)
        return 1
    from pyk8s.apiserver.authzmodes import check_modes

    modes = tuple(m.strip() for m in args.authorization_mode.split(",") if m.strip())
    problem = check_modes(modes)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 1
    problem = _security_config_errors(args)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 1
    try:
        helm_lease = _helm_lease(args)
    except ValueError as err:
        print(f"Error: {err}", file=sys.stderr)
        return 1
    logs.setup(args.command, args.log_level)
    opts = Options(
        data_dir=args.data_dir,
        datastore_endpoint=args.datastore_endpoint,
        bind_address=args.bind_address,
        https_listen_port=args.https_listen_port,
        advertise_address=args.advertise_address or _default_advertise(args),
        service_cidr=args.service_cidr,
        token_auth_file=args.token_auth_file,
        write_kubeconfig=args.write_kubeconfig,
        enable_admission_plugins=enable,
        disable_admission_plugins=disable,
        admission_config=admission_config,
        max_requests_inflight=args.max_requests_inflight,
        max_mutating_requests_inflight=args.max_mutating_requests_inflight,
        enable_priority_and_fairness=args.enable_priority_and_fairness == "true",
        audit_policy_file=args.audit_policy_file,
        audit_log_path=args.audit_log_path,
        audit_log_maxsize=args.audit_log_maxsize,
        audit_log_maxbackup=args.audit_log_maxbackup,
        audit_log_maxage=args.audit_log_maxage,
        encryption_provider_config=args.encryption_provider_config,
        secrets_encryption=args.secrets_encryption,
        authorization_modes=modes,
        anonymous_auth=args.anonymous_auth == "true",
        kubelet_certificate_authority=_kubelet_ca(args),
        requestheader_client_ca_file=args.requestheader_client_ca_file,
        requestheader_allowed_names=_names(args.requestheader_allowed_names),
        requestheader_username_headers=_names(args.requestheader_username_headers),
        requestheader_group_headers=_names(args.requestheader_group_headers),
        requestheader_extra_headers_prefix=_names(args.requestheader_extra_headers_prefix),
        **_snapshot_options(args),
        helm_lease=helm_lease,
        **_embedded_etcd_options(args),
        cluster_config=_cluster_config(args),
        apiserver_workers=args.apiserver_workers,
    )
    from pyk8s.server.apiserver import workers_problem

    problem = workers_problem(opts)
    if problem:
        print(f"Error: {problem}", file=sys.stderr)
        return 1
    if args.command == "server" and args.server and not (args.token or args.token_file):
        print("pyk8s server: error: --server needs --token (the server token)", file=sys.stderr)
        return 1
    try:
        components: list[tuple[str, ...]] = []
        if args.command == "server":
            health = _control_plane_args(args)
            components = [
                (
                    "controller-manager",
                    *health,
                    *_passed_through(args.controller_manager_args),
                    *_cloud_controller_manager(args),
                ),
                ("scheduler", *health, *_passed_through(args.scheduler_args)),
                ("metrics-server", *_metrics_server_args(args)),
            ]
            if args.enable_metrics_adapter:
                components.append(("metrics-adapter", *_metrics_adapter_args(args)))
            if not args.disable_agent:
                components.append(("kubelet", *_agent_args(args)))
                components.append(("proxy", *_proxy_args(args)))
                components.append(("dns", *_dns_args(args)))
                # on the node: nginx serves this host's addresses (k3s runs Traefik as pods)
                from pyk8s.server import ingress_controller

                ingress = ingress_controller.server_args(
                    args, _passed_through(args.ingress_controller_args)
                )
                if ingress is not None:
                    components.append(("ingress-controller", *ingress))
                from pyk8s.server import csi_hostpath

                csi = csi_hostpath.server_args(args)
                if csi is not None:
                    components.append(("csi-hostpath", *csi))
            disabled = _disabled_components(args)
            components = [c for c in components if c[0] not in disabled]
        forked = [c[0] for c in components]
        if opts.apiserver_workers > 1:
            forked.append("apiserver-worker")
        if forked:  # forked from one process that imported them, before any thread
            from pyk8s.server import zygote

            zygote.start(forked)
        asyncio.run(run_until_signalled(opts, components))
    except (StoreError, ValueError, OSError, JoinError, EtcdError) as err:
        print(f"pyk8s {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


def _run_apiserver_worker(args: argparse.Namespace) -> int:
    from pyk8s.server import apiserver_worker, logs

    logs.setup(args.command, args.log_level)
    try:
        asyncio.run(apiserver_worker.run(args.options))
    except (StoreError, ValueError, OSError) as err:
        print(f"pyk8s {args.command}: error: {err}", file=sys.stderr)
        return 1
    return 0


def _kubelet_ca(args: argparse.Namespace) -> Path | None:
    """``--kubelet-certificate-authority``; ``pyk8s server``'s kubelets serve with
    certificates from the cluster CA, so it verifies them by default, as k3s does."""
    if args.kubelet_certificate_authority is not None or args.command != "server":
        given: str | None = args.kubelet_certificate_authority
        return Path(given) if given else None
    from pyk8s.server.paths import default_data_dir

    return (args.data_dir or default_data_dir()) / "server" / "tls" / "ca.crt"


def _control_plane_args(args: argparse.Namespace) -> list[str]:
    """What several servers sharing a host need (HA tests on loopback): a server bound to
    one address serves its controller manager's and scheduler's /healthz there too, and
    with ``--node-name`` their leader-election identities name that node, not the host
    (upstream's ``<hostname>_<uuid>``: distinct servers have distinct host names)."""
    out = ["--hostname-override", args.node_name] if args.node_name else []
    if args.bind_address in ("0.0.0.0", "::"):
        return out
    return [*out, "--bind-address", args.bind_address]


def _disabled_components(args: argparse.Namespace) -> set[str]:
    """The supervised components ``--disable NAME`` and ``--disable-scheduler`` turn off
    (k3s's names: coredns is ``pyk8s dns``)."""
    names = {n.strip() for v in args.disable for n in v.split(",")}
    aliases = {"coredns": "dns", "metrics-server": "metrics-server"}
    out = {aliases[n] for n in names if n in aliases}
    if args.disable_scheduler:
        out.add("scheduler")
    return out


def _helm_lease(args: argparse.Namespace) -> LeaseSettings | None:
    """``pyk8s server``'s Helm controller lease (LeaseSettings) from k3s's
    ``CATTLE_ELECTION_*`` variables, or None (``pyk8s apiserver`` runs no Helm
    controller); ValueError naming a bad variable."""
    if args.command != "server":
        return None
    from pyk8s.server.manifests import helm_lease

    return helm_lease(os.environ, args.node_name)


def _snapshot_options(args: argparse.Namespace) -> dict[str, Any]:
    """``pyk8s server``'s scheduled snapshots and auto-deployed manifests (none for
    ``pyk8s apiserver``)."""
    if args.command != "server":
        return {}
    deploy = {"deploy_manifests": True, "helm_controller": not args.disable_helm_controller}
    if args.etcd_disable_snapshots:
        return {**deploy, "node_name": args.node_name}
    return {
        "etcd_snapshot_schedule_cron": args.etcd_snapshot_schedule_cron,
        "etcd_snapshot_retention": args.etcd_snapshot_retention,
        "etcd_snapshot_dir": args.etcd_snapshot_dir,
        "node_name": args.node_name,
        **deploy,
    }


def _security_config_errors(args: argparse.Namespace) -> str:
    """Why the audit policy or the encryption configuration cannot be used (one line
    naming the file and the field), or ""."""
    from pyk8s.apiserver.audit import AuditPolicyError, load_policy
    from pyk8s.apiserver.encryptionconfig import EncryptionConfigError, load_encryption_config

    for flag in ("maxage", "maxbackup", "maxsize"):
        value = getattr(args, f"audit_log_{flag}")
        if value < 0:
            return f"--audit-log-{flag} {value} can't be a negative number"
    try:
        if args.audit_policy_file:
            load_policy(args.audit_policy_file)
        if args.encryption_provider_config:
            load_encryption_config(args.encryption_provider_config)
    except (AuditPolicyError, EncryptionConfigError) as err:
        return str(err)
    return ""


def _secrets_encrypt(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.server.paths import default_data_dir
    from pyk8s.server.secretsencrypt import run

    kubeconfig = args.kubeconfig or (args.data_dir or default_data_dir()) / "kubeconfig.yaml"
    try:
        out = asyncio.run(
            run(
                kubeconfig,
                args.encrypt_command,
                force=args.force,
                skip=args.skip,
                output=args.output,
            )
        )
    except ClientError as err:
        print(f"pyk8s secrets-encrypt: error: {err}: see server log for details", file=sys.stderr)
        return 1
    print(out)
    return 0


def _default_advertise(args: argparse.Namespace) -> str:
    """``pyk8s server`` advertises this host's address (what pods reach the API server at
    through the ``kubernetes`` Service); ``pyk8s apiserver`` keeps 127.0.0.1."""
    if args.command != "server" or args.bind_address.startswith("127."):
        return ""
    from pyk8s.kubelet.node import default_host_ip

    return default_host_ip()


def _run_controller_manager(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.controllers.csrsigning import SIGNER_FLAGS
    from pyk8s.controllers.csrsigning import Settings as CSRSigningSettings
    from pyk8s.controllers.horizontalpodautoscaler import Settings as HPASettings
    from pyk8s.controllers.nodeipam import Settings as NodeIPAMSettings
    from pyk8s.server import cohost, controller_manager, logs
    from pyk8s.server.component import parse_duration

    logs.setup("controller-manager", args.log_level)
    try:
        opts = controller_manager.Options(
            kubeconfig=args.kubeconfig,
            controllers=[c.strip() for c in args.controllers.split(",") if c.strip()],
            leader_elect=args.leader_elect == "true",
            lease=_lease_settings(args),
            bind_address=args.bind_address,
            port=args.port,
            hpa=HPASettings(
                sync_period=parse_duration(
                    args.horizontal_pod_autoscaler_sync_period,
                    "horizontal-pod-autoscaler-sync-period",
                ),
                downscale_stabilization=parse_duration(
                    args.horizontal_pod_autoscaler_downscale_stabilization,
                    "horizontal-pod-autoscaler-downscale-stabilization",
                ),
                tolerance=args.horizontal_pod_autoscaler_tolerance,
            ),
            use_service_account_credentials=args.use_service_account_credentials == "true",
            csr_signing=CSRSigningSettings(
                args.cluster_signing_cert_file,
                args.cluster_signing_key_file,
                parse_duration(args.cluster_signing_duration, "cluster-signing-duration"),
                per_signer=_per_signer_files(args, SIGNER_FLAGS),
            ),
            nodeipam=NodeIPAMSettings(
                args.cluster_cidr, args.node_cidr_mask_size_ipv4, args.node_cidr_mask_size_ipv6
            ),
        )
        opts.nodeipam.cidr_sets()  # a bad --cluster-cidr fails here, with the flag's name
        opts.csr_signing.files()  # and a bad --cluster-signing-* combination here
        controller_manager.selected(opts.controllers)
        cloud = None
        if args.embedded_cloud_controller_arg:
            cloud = _cloud_controller_options(
                _parser().parse_args(
                    ["cloud-controller-manager", *args.embedded_cloud_controller_arg]
                )
            )
        guests = {}
        for name, guest in _guests(args, "scheduler").items():
            from pyk8s.server import scheduler

            guests[name] = scheduler.run(_scheduler_options(guest))
        asyncio.run(cohost.run_together(controller_manager.run(opts, cloud), guests))
    except (ClientError, ValueError, OSError) as err:
        print(f"pyk8s controller-manager: error: {err}", file=sys.stderr)
        return 1
    return 0


def _per_signer_files(
    args: argparse.Namespace, flags: dict[str, str]
) -> dict[str, tuple[str, str]]:
    """signer -> (cert, key) of the ``--cluster-signing-<name>-cert-file/-key-file``
    pairs given (either half)."""
    out = {}
    for signer, name in flags.items():
        attr = "cluster_signing_" + name.replace("-", "_")
        cert, key = getattr(args, f"{attr}_cert_file"), getattr(args, f"{attr}_key_file")
        if cert or key:
            out[signer] = (cert, key)
    return out


def _run_cloud_controller_manager(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.server import cloud_controller_manager as ccm
    from pyk8s.server import logs

    logs.setup("cloud-controller-manager", args.log_level)
    try:
        opts = _cloud_controller_options(args)
        asyncio.run(ccm.run(opts))
    except (ClientError, ValueError, OSError) as err:
        print(f"pyk8s cloud-controller-manager: error: {err}", file=sys.stderr)
        return 1
    return 0


def _cloud_controller_options(args: argparse.Namespace) -> CloudControllerOptions:
    """``pyk8s cloud-controller-manager``'s flags as its Options (ValueError for an
    unknown provider or controller, or a bad lease duration)."""
    from pyk8s.server import cloud_controller_manager as ccm

    opts = ccm.Options(
        kubeconfig=args.kubeconfig,
        cloud_provider=args.cloud_provider,
        lb_address_pools=args.lb_address_pool,
        lb_class=args.lb_class,
        controllers=[c.strip() for c in args.controllers.split(",") if c.strip()],
        leader_elect=args.leader_elect == "true",
        lease=_lease_settings(args),
        bind_address=args.bind_address,
        port=args.port,
    )
    ccm.check(opts)
    return opts


def _run_sim_nodes(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.server import logs, sim_nodes

    logs.setup("sim-nodes", args.log_level)
    opts = sim_nodes.Options(
        kubeconfig=args.kubeconfig,
        count=args.count,
        name_prefix=args.name_prefix,
        cpu=args.cpu,
        memory=args.memory,
        pods=args.pods,
        ephemeral_storage=args.ephemeral_storage,
        extended=args.extended,
        labels=args.labels,
        taints=args.taints,
        bind_address=args.bind_address,
        port=args.port,
        qps=args.kube_api_qps,
        burst=args.kube_api_burst,
        lease_duration=args.node_lease_duration_seconds,
    )
    try:
        asyncio.run(sim_nodes.run(opts))
    except (ClientError, ValueError, OSError) as err:
        print(f"pyk8s sim-nodes: error: {err}", file=sys.stderr)
        return 1
    return 0


def _run_cluster_autoscaler(args: argparse.Namespace) -> int:
    from pyk8s.autoscaler import Options, parse_duration
    from pyk8s.client import ClientError
    from pyk8s.server import cluster_autoscaler, logs

    logs.setup("cluster-autoscaler", args.log_level)
    try:
        host, _, port = args.address.rpartition(":")
        opts = cluster_autoscaler.RunOptions(
            config=args.config,
            kubeconfig=args.kubeconfig,
            autoscaler=Options(
                scan_interval=parse_duration(args.scan_interval),
                frequent_loops=args.frequent_loops_enabled,
                expander=args.expander,
                scale_down_enabled=args.scale_down_enabled,
                scale_down_utilization_threshold=args.scale_down_utilization_threshold,
                scale_down_unneeded_time=parse_duration(args.scale_down_unneeded_time),
                scale_down_delay_after_add=parse_duration(args.scale_down_delay_after_add),
                max_pod_eviction_time=parse_duration(args.max_pod_eviction_time),
                max_graceful_termination_sec=args.max_graceful_termination_sec,
                status_config_map_name=args.status_config_map_name,
            ),
            bind_address=host or "0.0.0.0",
            port=int(port),
            qps=args.kube_api_qps,
            burst=args.kube_api_burst,
            leader_elect=args.leader_elect == "true",
        )
        asyncio.run(cluster_autoscaler.run(opts))
    except (ClientError, ValueError, OSError) as err:
        print(f"pyk8s cluster-autoscaler: error: {err}", file=sys.stderr)
        return 1
    return 0


def _run_scheduler(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.server import logs, scheduler

    logs.setup("scheduler", args.log_level)
    try:
        asyncio.run(scheduler.run(_scheduler_options(args)))
    except (ClientError, ValueError, OSError) as err:
        print(f"pyk8s scheduler: error: {err}", file=sys.stderr)
        return 1
    return 0


def _scheduler_options(args: argparse.Namespace) -> SchedulerOptions:
    """``pyk8s scheduler``'s flags as its Options."""
    from pyk8s.server import scheduler

    return scheduler.Options(
        kubeconfig=args.kubeconfig,
        leader_elect=args.leader_elect == "true",
        lease=_lease_settings(args),
        bind_address=args.bind_address,
        port=args.port,
        config=args.config,
        kube_api_qps=args.kube_api_qps,
        kube_api_burst=args.kube_api_burst,
    )


def _guests(args: argparse.Namespace, *names: str) -> dict[str, argparse.Namespace]:
    """The components embedded in this one's process (:mod:`pyk8s.server.cohost`), each
    with its argv parsed by its own subcommand's parser."""
    out = {}
    for name in names:
        argv = getattr(args, f"embedded_{name}_arg")
        if argv:
            out[name] = _parser().parse_args([name, *argv])
    return out


def _cloud_controller_manager(args: argparse.Namespace) -> list[str]:
    """``pyk8s server``'s cloud controller manager with the ``local`` provider, as flags
    of its controller manager, which runs it in its own process as k3s embeds its cloud
    controller (with the cloud controller manager's own kubeconfig; ``--disable-cloud-
    controller`` leaves it out)."""
    if args.disable_cloud_controller:
        return []
    kubeconfig = args.data_dir / "server" / "cred" / "cloud-controller-manager.kubeconfig"
    extra = ["--kubeconfig", str(kubeconfig), "--cloud-provider", "local"]
    if args.node_name:
        extra += ["--hostname-override", args.node_name]
    extra += _passed_through(args.cloud_controller_manager_args)
    for pool in args.lb_address_pool:
        extra += ["--lb-address-pool", pool]
    return [f"--embedded-cloud-controller-arg={arg}" for arg in extra]


def _cluster_config(args: argparse.Namespace) -> dict[str, str]:
    """What ``pyk8s server`` tells joining agents (:mod:`pyk8s.server.clusterconfig`);
    nothing from ``pyk8s apiserver``, which knows no pod CIDR."""
    if args.command != "server":
        return {}
    return {
        "clusterCIDR": args.cluster_cidr,
        "serviceCIDR": args.service_cidr,
        "clusterDNS": args.cluster_dns or _kube_dns_ip(args.service_cidr),
        "clusterDomain": args.cluster_domain or "cluster.local",
    }


def _agent_args(args: argparse.Namespace) -> list[str]:
    """The flags ``pyk8s server`` passes to its ``pyk8s kubelet`` child (pods resolve
    through the kube-dns service unless ``--cluster-dns`` says otherwise)."""
    dns = [] if args.cluster_dns else ["--cluster-dns", _kube_dns_ip(args.service_cidr)]
    if not args.disable_cloud_controller:
        dns += ["--cloud-provider", "external"]  # the cloud controller manager initialises it
    # k3s keeps the server node's local-path volumes in DATA_DIR/storage
    storage = (
        []
        if args.default_local_storage_path
        else ["--default-local-storage-path", str(args.data_dir / "storage")]
    )
    return [
        "--data-dir", str(args.data_dir / "agent"), "--node-routes", *dns, *storage,
        "--service-cidr", args.service_cidr, "--cluster-cidr", args.cluster_cidr,
        *_kubelet_flags(args),
    ]  # fmt: skip


def _kubelet_flags(args: argparse.Namespace) -> list[str]:
    """The node flags (``_add_agent_flags(in_server=True)``) as ``pyk8s kubelet`` argv."""
    out: list[str] = []
    flags = ("node_name", "node_ip", "container_runtime_endpoint", "cluster_dns")
    for flag in (*flags, "default_runtime"):
        if getattr(args, flag):
            out += ["--" + flag.replace("_", "-"), getattr(args, flag)]
    if args.cluster_domain:
        out += ["--cluster-domain", args.cluster_domain]
    for label in args.node_label:
        out += ["--node-label", label]
    for taint in args.node_taint:
        out += ["--node-taint", taint]
    for registry in args.insecure_registry:
        out += ["--insecure-registry", registry]
    if args.default_local_storage_path:
        out += ["--default-local-storage-path", str(args.default_local_storage_path)]
    return out + _passed_through(args.kubelet_args)


def _run_proxy(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.server import logs, proxy

    logs.setup("proxy", args.log_level)
    try:
        asyncio.run(proxy.run(_proxy_options(args)))
    except (ClientError, ValueError, OSError, RuntimeError) as err:
        print(f"pyk8s proxy: error: {err}", file=sys.stderr)
        return 1
    return 0


def _proxy_options(args: argparse.Namespace) -> ProxyOptions:
    """``pyk8s proxy``'s flags as its Options."""
    from pyk8s.server import proxy

    fields = ("kubeconfig", "node_name", "cluster_cidr", "masquerade_bit", "node_ips",
              "nodeport_addresses", "min_sync_period", "sync_period", "cleanup",
              "mode", "disable_network_policy")  # fmt: skip
    health_address, health_port = host_port(args.bind_address, args.port)
    metrics = host_port(args.metrics_bind_address, 0) if args.metrics_bind_address else None
    return proxy.Options(
        **{f: getattr(args, f) for f in fields},
        bind_address=health_address,
        port=health_port,
        metrics_bind_address=metrics,
    )


def host_port(value: str, default_port: int) -> tuple[str, int]:
    """kube-proxy's ``IP:PORT`` bind addresses (``[::1]:10256`` for IPv6); a bare IP keeps
    ``default_port`` (the older ``--healthz-bind-address IP --healthz-port PORT`` form)."""
    if value.startswith("["):
        host, _, port = value[1:].partition("]")
        return host, int(port.lstrip(":")) if port else default_port
    if value.count(":") == 1:
        host, _, port = value.partition(":")
        if not port.isdigit():
            raise ValueError(f"{value!r} is not a valid IP:PORT")
        return host, int(port)
    return value, default_port


def _run_dns(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.server import dns, logs

    logs.setup("dns", args.log_level)
    try:
        asyncio.run(dns.run(_dns_options(args)))
    except (ClientError, ValueError, OSError) as err:
        print(f"pyk8s dns: error: {err}", file=sys.stderr)
        return 1
    return 0


def _dns_options(args: argparse.Namespace) -> DNSOptions:
    """``pyk8s dns``'s flags as its Options."""
    from pyk8s.server import dns

    fields = ("kubeconfig", "bind_address", "port", "cluster_domain", "upstreams",
              "resolv_conf", "forward_timeout", "ttl", "health_bind_address", "health_port",
              "ready_port", "pods", "cluster_ip", "advertise_address",
              "node_name")  # fmt: skip
    return dns.Options(**{f: getattr(args, f) for f in fields})


def _run_metrics_server(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.server import logs, metrics_server
    from pyk8s.server.component import parse_duration

    logs.setup("metrics-server", args.log_level)
    try:
        types = [t.strip() for t in args.kubelet_preferred_address_types.split(",") if t.strip()]
        opts = metrics_server.Options(
            kubeconfig=args.kubeconfig,
            bind_address=args.bind_address,
            secure_port=args.secure_port,
            metric_resolution=parse_duration(args.metric_resolution, "metric-resolution"),
            kubelet_insecure_tls=args.kubelet_insecure_tls,
            kubelet_client_certificate=args.kubelet_client_certificate,
            kubelet_client_key=args.kubelet_client_key,
            kubelet_certificate_authority=args.kubelet_certificate_authority,
            kubelet_preferred_address_types=tuple(types),
            kubelet_request_timeout=parse_duration(
                args.kubelet_request_timeout, "kubelet-request-timeout"
            ),
            tls_cert_file=args.tls_cert_file,
            tls_private_key_file=args.tls_private_key_file,
            cert_dir=args.cert_dir,
            health_bind_address=args.health_bind_address,
            health_port=args.health_port,
            advertise_address=args.advertise_address,
        )
        asyncio.run(metrics_server.run(opts))
    except (ClientError, ValueError, OSError) as err:
        print(f"pyk8s metrics-server: error: {err}", file=sys.stderr)
        return 1
    return 0


def _run_ingress_controller(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.ingress.nginx import NginxError
    from pyk8s.server import ingress_controller, logs

    logs.setup("ingress-controller", args.log_level)
    try:
        asyncio.run(ingress_controller.run(ingress_controller.options(args)))
    except (ClientError, NginxError, ValueError, OSError) as err:
        print(f"pyk8s ingress-controller: error: {err}", file=sys.stderr)
        return 1
    return 0


def _metrics_server_args(args: argparse.Namespace) -> list[str]:
    """``pyk8s server`` runs metrics-server as a supervised child (k3s runs it as a pod;
    here the control plane may have no node at all, e.g. with sim-nodes): on any free
    port, registered through a selectorless Service + EndpointSlice at the advertise
    address, reaching kubelets with the API server's kubelet client certificate (not
    verifying their serving certificates, ``--kubelet-insecure-tls``, as k3s's bundled
    manifest does: simulated nodes serve self-signed ones)."""
    from pyk8s.kubelet.node import default_host_ip
    from pyk8s.server.paths import default_data_dir

    tls = (args.data_dir or default_data_dir()) / "server" / "tls"
    address = args.advertise_address or args.node_ip.split(",")[0] or default_host_ip()
    return ["--secure-port", "0", "--health-port", "0", "--advertise-address", address,
            "--bind-address", address, "--kubelet-insecure-tls",
            "--kubelet-preferred-address-types", "InternalIP,ExternalIP,Hostname",
            "--kubelet-client-certificate", str(tls / "apiserver-kubelet-client.crt"),
            "--kubelet-client-key", str(tls / "apiserver-kubelet-client.key"),
            "--cert-dir", str(tls / "metrics-server"),
            *_passed_through(args.metrics_server_args)]  # fmt: skip


def _run_metrics_adapter(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.server import logs, metrics_adapter
    from pyk8s.server.component import parse_duration

    logs.setup("metrics-adapter", args.log_level)
    try:
        opts = metrics_adapter.Options(
            kubeconfig=args.kubeconfig,
            bind_address=args.bind_address,
            secure_port=args.secure_port,
            scrape_interval=parse_duration(args.scrape_interval, "scrape-interval"),
            scrape_timeout=parse_duration(args.scrape_timeout, "scrape-timeout"),
            tls_cert_file=args.tls_cert_file,
            tls_private_key_file=args.tls_private_key_file,
            cert_dir=args.cert_dir,
            health_bind_address=args.health_bind_address,
            health_port=args.health_port,
            advertise_address=args.advertise_address,
        )
        asyncio.run(metrics_adapter.run(opts))
    except (ClientError, ValueError, OSError) as err:
        print(f"pyk8s metrics-adapter: error: {err}", file=sys.stderr)
        return 1
    return 0


def _metrics_adapter_args(args: argparse.Namespace) -> list[str]:
    """``pyk8s server --enable-metrics-adapter`` runs the adapter as metrics-server: a
    supervised child on any free port, registered at the advertise address."""
    from pyk8s.kubelet.node import default_host_ip
    from pyk8s.server.paths import default_data_dir

    tls = (args.data_dir or default_data_dir()) / "server" / "tls"
    address = args.advertise_address or args.node_ip.split(",")[0] or default_host_ip()
    return ["--secure-port", "0", "--health-port", "0", "--advertise-address", address,
            "--bind-address", address, "--cert-dir", str(tls / "metrics-adapter"),
            *_passed_through(args.metrics_adapter_args)]  # fmt: skip


def _dns_args(args: argparse.Namespace) -> list[str]:
    """``pyk8s server`` runs the cluster DNS behind kube-dns, the tenth service address,
    and publishes the Service; its node's endpoint as :func:`_node_dns_args`."""
    extra = _passed_through(args.dns_args)
    return ["--cluster-ip", _kube_dns_ip(args.service_cidr), *_node_dns_args(args), *extra]


def _node_dns_args(args: argparse.Namespace) -> list[str]:
    """The DNS server of a node (``pyk8s server``'s or ``pyk8s agent``'s): on the node's
    address, publishing itself in that node's kube-dns EndpointSlice."""
    from pyk8s.kubelet.node import default_host_ip

    # a dual-stack node's --node-ip v4,v6: DNS serves on the primary address
    address = (
        args.node_ip.split(",")[0] or getattr(args, "advertise_address", "") or default_host_ip()
    )
    node = ["--node-name", args.node_name] if args.node_name else []
    # bound to that address, not 0.0.0.0: a UDP reply must leave from the address the
    # query was sent to, or conntrack cannot undo the service DNAT
    domain = ["--cluster-domain", args.cluster_domain] if args.cluster_domain else []
    return ["--advertise-address", address, "--bind-address", address, *node, *domain,
            "--health-port", "9153"]  # fmt: skip


def _kube_dns_ip(service_cidr: str) -> str:
    """kube-dns's ClusterIP: the 10th address of the (primary) service CIDR."""
    import ipaddress

    return str(ipaddress.ip_network(service_cidr.split(",")[0].strip()).network_address + 10)


def _proxy_args(args: argparse.Namespace) -> list[str]:
    """The flags a node's ``pyk8s proxy`` child gets from the server/agent flags."""
    out: list[str] = []
    if args.node_name:
        out += ["--hostname-override", args.node_name]
    for ip in args.node_ip.split(",") if args.node_ip else ():  # both of a dual-stack node
        out += ["--node-ip", ip]
    if getattr(args, "cluster_cidr", None):  # server only: an agent passes --kube-proxy-arg
        out += ["--cluster-cidr", args.cluster_cidr]
    return out + _passed_through(args.proxy_args)


def _run_agent(args: argparse.Namespace) -> int:
    from pyk8s.server import agent, logs
    from pyk8s.server.paths import default_data_dir

    logs.setup("agent", args.log_level)
    try:
        token = args.token or (args.token_file.read_text() if args.token_file else "")
        opts = agent.Options(
            server=args.server,
            token=token,
            data_dir=args.data_dir or default_data_dir() / "agent",
            kubelet_args=_kubelet_flags(args),
            proxy_args=_proxy_args(args),
            dns_args=_node_dns_args(args),
            lb_server_port=args.lb_server_port,
        )
        from pyk8s.server import zygote  # its components are forked, as the server's

        zygote.start(["kubelet", "proxy", *(["dns"] if opts.dns_args else [])])
        asyncio.run(agent.run(opts))
    except (agent.JoinError, OSError) as err:
        print(f"pyk8s agent: error: {err}", file=sys.stderr)
        return 1
    return 0


def _run_kubelet(args: argparse.Namespace) -> int:
    from pyk8s.client import ClientError
    from pyk8s.kubelet.cri import CRIError
    from pyk8s.kubelet.runtimes import ContainerdError
    from pyk8s.server import cohost, kubelet, logs
    from pyk8s.server.paths import default_data_dir

    logs.setup("kubelet", args.log_level)
    opts = kubelet.Options(
        data_dir=args.data_dir or default_data_dir() / "agent",
        kubeconfig=args.kubeconfig,
        node_name=args.node_name,
        node_ip=args.node_ip,
        container_runtime_endpoint=args.container_runtime_endpoint,
        pod_cidr=args.pod_cidr,
        cluster_dns=[s for s in args.cluster_dns.split(",") if s],
        cluster_domain=args.cluster_domain,
        node_labels=",".join(args.node_label),
        register_with_taints=",".join(args.node_taint),
        cloud_provider=args.cloud_provider,
        cni_bridge=args.cni_bridge,
        insecure_registries=args.insecure_registry,
        default_runtime=args.default_runtime,
        log_root=args.log_root,
        healthz_bind_address=args.healthz_bind_address,
        healthz_port=args.healthz_port,
        address=args.address,
        port=args.port,
        node_routes=args.node_routes,
        cluster_cidr=args.cluster_cidr,
        service_cidr=args.service_cidr,
        local_storage_path=args.default_local_storage_path,
        bootstrap_kubeconfig=args.bootstrap_kubeconfig,
        cert_dir=args.cert_dir,
        rotate_certificates=args.rotate_certificates == "true",
        rotate_server_certificates=args.rotate_server_certificates == "true",
        node_routes_kubeconfig=args.node_routes_kubeconfig,
    )
    try:
        guests = _guests(args, "proxy", "dns")
        jobs = {}
        if "proxy" in guests:
            from pyk8s.server import proxy

            jobs["proxy"] = proxy.run(_proxy_options(guests["proxy"]))
        if "dns" in guests:
            from pyk8s.server import dns

            jobs["dns"] = dns.run(_dns_options(guests["dns"]))
        asyncio.run(cohost.run_together(kubelet.run(opts), jobs))
    except (ClientError, CRIError, ContainerdError, ValueError, OSError, RuntimeError) as err:
        print(f"pyk8s kubelet: error: {err}", file=sys.stderr)
        return 1
    return 0


def _image(args: argparse.Namespace) -> int:
    from pyk8s.kubelet.runtimes import Containerd, ContainerdConfig, ContainerdError
    from pyk8s.server.paths import default_data_dir

    endpoint = args.container_runtime_endpoint.removeprefix("unix://")
    config = ContainerdConfig(
        args.data_dir or default_data_dir() / "agent", endpoint=Path(endpoint) if endpoint else None
    )
    runtime = Containerd(config)
    if not runtime.socket.exists():
        print(
            f"pyk8s image: no containerd at {runtime.socket} (is the node running?)",
            file=sys.stderr,
        )
        return 1

    async def names() -> set[str]:  # the CRI plugin also lists every image by its digest
        return {ref for ref in await runtime.image_refs() if not ref.startswith("sha256:")}

    async def run() -> None:
        if args.image_command == "import":
            before = await names()
            for archive in args.archives:
                await runtime.import_image(archive)
            added = sorted(await names() - before)
            for ref in added:
                print(f"imported {ref}")
            if not added:
                print("imported: every image in the archives was already present")
        else:
            for ref in sorted(await names()):
                print(ref)

    try:
        asyncio.run(run())
    except ContainerdError as err:
        print(f"pyk8s image: error: {err}", file=sys.stderr)
        return 1
    return 0


def _kubectl(argv: list[str]) -> int:
    from pyk8s.server.paths import default_data_dir

    kubectl = shutil.which("kubectl")
    if kubectl is None:
        print("pyk8s kubectl: kubectl is not installed", file=sys.stderr)
        return 1
    env = dict(os.environ)
    env.setdefault("KUBECONFIG", str(default_data_dir() / "kubeconfig.yaml"))
    os.execve(kubectl, [kubectl, *argv], env)
    return 1  # pragma: no cover - execve does not return


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The command line; ``pyk8s server``'s ``--kube-apiserver-arg FLAG=VALUE`` are its own
    flags (the API server runs in this process), given after the others so they win."""
    args = _parser().parse_args(argv)
    if getattr(args, "apiserver_args", None):
        args = _parser().parse_args([*argv, *_passed_through(args.apiserver_args)])
    return args


def main(argv: Sequence[str] | None = None) -> int:
    from pyk8s.server import bytecode, tlsbuffers

    bytecode.enable()  # the ``pyk8s`` script's imports from here on (``-m pyk8s``: all)
    tlsbuffers.shrink()
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["kubectl"]:
        return _kubectl(argv[1:])
    args = parse_args(argv)
    if args.command is None:
        _parser().print_help()
        return 2
    if os.environ.get("PYK8S_START_GATE"):  # a child of pyk8s server, started early
        from pyk8s.server import startgate

        startgate.wait_in_child(args.command)
    if args.command == "server" and (args.cluster_reset or args.cluster_reset_restore_path):
        return _cluster_reset(args)
    if args.command in ("server", "apiserver"):
        return _run_apiserver(args)
    if args.command == "apiserver-worker":
        return _run_apiserver_worker(args)
    if args.command == "etcd-snapshot":
        return _etcd_snapshot(args)
    if args.command in ("killall", "uninstall"):
        return _killall(args)
    if args.command == "token":
        return _token(args)
    if args.command == "certificate":
        return _certificate(args)
    if args.command == "controller-manager":
        return _run_controller_manager(args)
    if args.command == "cloud-controller-manager":
        return _run_cloud_controller_manager(args)
    if args.command == "scheduler":
        return _run_scheduler(args)
    if args.command == "csi-hostpath":
        from pyk8s.server import csi_hostpath

        return csi_hostpath.main(args)
    if args.command == "sim-nodes":
        return _run_sim_nodes(args)
    if args.command == "cluster-autoscaler":
        return _run_cluster_autoscaler(args)
    if args.command == "kubelet":
        return _run_kubelet(args)
    if args.command == "agent":
        return _run_agent(args)
    if args.command == "proxy":
        return _run_proxy(args)
    if args.command == "dns":
        return _run_dns(args)
    if args.command == "metrics-server":
        return _run_metrics_server(args)
    if args.command == "metrics-adapter":
        return _run_metrics_adapter(args)
    if args.command == "ingress-controller":
        return _run_ingress_controller(args)
    if args.command == "image":
        return _image(args)
    if args.command == "secrets-encrypt":
        return _secrets_encrypt(args)
    if args.command == "trace":
        from pyk8s.trace import command as trace_command

        return trace_command.run(args)
    if args.command == "datastore-check":
        try:
            asyncio.run(_datastore_check(args.datastore_endpoint))
        except (StoreError, ValueError) as err:
            print(f"pyk8s: error: {err}", file=sys.stderr)
            return 1
    return 0
