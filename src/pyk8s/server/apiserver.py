"""Run the API server: data dir, PKI, kubeconfig, store, TLS listener, clean shutdown.

``pyk8s apiserver`` runs only this; ``pyk8s server`` runs it with the other control
plane components. Flags use k3s's names. Starting on an existing data directory serves
everything that was stored, with the same resourceVersions. With ``--apiserver-workers
N`` this process is the primary of N API server processes on one port over one SQLite
file (:mod:`pyk8s.server.apiserver_worker`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import pickle
import re
import socket
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aiohttp import web

from pyk8s.api.registry import REGISTRY
from pyk8s.apiserver import audit
from pyk8s.apiserver.arrival import ArrivalRunner
from pyk8s.apiserver.authn import (
    Authenticator,
    AuthenticatorChain,
    RequestHeaderAuthenticator,
    RequestHeaderConfig,
    ServiceAccountTokenAuthenticator,
    TokenFileAuthenticator,
    UidLookup,
    X509Authenticator,
)
from pyk8s.apiserver.authzmodes import DEFAULT_AUTHORIZATION_MODES
from pyk8s.apiserver.bootstraptoken import BootstrapTokenAuthenticator
from pyk8s.apiserver.certs import Pki, ensure_pki, server_ssl_context, write_kubeconfig
from pyk8s.apiserver.encryptionconfig import load_encryption_config
from pyk8s.apiserver.inflight import (
    DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT,
    DEFAULT_MAX_REQUESTS_INFLIGHT,
)
from pyk8s.apiserver.secretsencrypt import SecretsEncryption, ensure_config
from pyk8s.apiserver.server import APIServer, Config
from pyk8s.server import clusterconfig, gcfreeze, malloctrim, manifests, startgate
from pyk8s.server.addon_identities import installs
from pyk8s.server.certrenew import CertFollower, CertRenewer
from pyk8s.server.component import stop_on_signals, tcp_site
from pyk8s.server.identities import (
    component_flags,
    controller_service_accounts,
    create_missing,
    ensure_component_policy,
    ensure_join_token,
    ensure_node_client_certificate,
    new_bootstrap_token,
    write_component_kubeconfigs,
)
from pyk8s.server.localstorage import ensure_local_storage
from pyk8s.server.paths import default_data_dir
from pyk8s.server.supervisor import Supervisor
from pyk8s.storage import Store, open_store
from pyk8s.storage.encryption import EncryptingStore, Rule

if TYPE_CHECKING:
    from pyk8s.client import LeaseSettings

log = logging.getLogger(__name__)

BOOTSTRAP_TOKEN = re.compile(r"^[a-z0-9]{6}\.[a-z0-9]{16}$")


@dataclass
class Options:
    data_dir: Path = field(default_factory=default_data_dir)
    datastore_endpoint: str = ""
    bind_address: str = "0.0.0.0"
    https_listen_port: int = 6443
    advertise_address: str = ""
    service_cidr: str = "10.43.0.0/16"
    token_auth_file: Path | None = None
    write_kubeconfig: Path | None = None
    #: --enable-admission-plugins / --disable-admission-plugins (upstream names)
    enable_admission_plugins: tuple[str, ...] = ()
    disable_admission_plugins: tuple[str, ...] = ()
    #: the enabled plugins' configuration by name, as load_admission_config reads an
    #: --admission-control-config-file
    admission_config: dict[str, Any] = field(default_factory=dict)
    #: --max-requests-inflight / --max-mutating-requests-inflight (upstream's defaults)
    max_requests_inflight: int = DEFAULT_MAX_REQUESTS_INFLIGHT
    max_mutating_requests_inflight: int = DEFAULT_MAX_MUTATING_REQUESTS_INFLIGHT
    #: --enable-priority-and-fairness (upstream's default: on)
    enable_priority_and_fairness: bool = True
    #: --authorization-mode (upstream names, in order; system:masters is always allowed)
    authorization_modes: tuple[str, ...] = DEFAULT_AUTHORIZATION_MODES
    #: --anonymous-auth: requests without credentials are system:anonymous (else 401)
    anonymous_auth: bool = True
    #: --kubelet-certificate-authority (None: kubelets' serving certificates unverified)
    kubelet_certificate_authority: Path | None = None
    #: --audit-policy-file and the log backend's --audit-log-* flags (no policy: no audit)
    audit_policy_file: str = ""
    audit_log_path: str = ""
    audit_log_maxsize: int = 0
    audit_log_maxbackup: int = 0
    audit_log_maxage: int = 0
    #: --encryption-provider-config (an EncryptionConfiguration file)
    encryption_provider_config: str = ""
    #: k3s's --secrets-encryption: aescbc for secrets with a generated key, managed by
    #: ``pyk8s secrets-encrypt``
    secrets_encryption: bool = False
    #: upstream's --requestheader-* flags; None: kubeadm's values, with the front-proxy CA
    #: of the data dir
    requestheader_client_ca_file: Path | None = None
    requestheader_allowed_names: tuple[str, ...] | None = None
    requestheader_username_headers: tuple[str, ...] | None = None
    requestheader_group_headers: tuple[str, ...] | None = None
    requestheader_extra_headers_prefix: tuple[str, ...] | None = None
    #: k3s's scheduled snapshots (--etcd-snapshot-schedule-cron; "" = none), their
    #: retention and directory (default DATA_DIR/server/db/snapshots)
    etcd_snapshot_schedule_cron: str = ""
    etcd_snapshot_retention: int = 5
    etcd_snapshot_dir: Path | None = None
    node_name: str = ""
    #: k3s's auto-deployed manifests: apply DATA_DIR/server/manifests (pyk8s server)
    deploy_manifests: bool = False
    #: with deploy_manifests: k3s's Helm controller and its CRDs (--disable-helm-controller)
    helm_controller: bool = True
    #: the Helm controller's lease timings and identity host (from k3s's
    #: CATTLE_ELECTION_* variables: manifests.helm_lease); None: the defaults
    helm_lease: LeaseSettings | None = None
    #: k3s's embedded etcd: --cluster-init starts a new cluster, --server URL with the
    #: server --token joins one (a data dir that holds a member always runs it)
    cluster_init: bool = False
    join_server: str = ""
    join_token: str = ""
    etcd_client_port: int = 2379
    etcd_peer_port: int = 2380
    #: the networking settings joining agents learn (pyk8s.server.clusterconfig's data;
    #: empty: none published)
    cluster_config: dict[str, str] = field(default_factory=dict)
    #: --apiserver-workers: API server processes serving the port (SO_REUSEPORT) over
    #: one SQLite file, this one and N-1 supervised workers (:mod:`.apiserver_worker`)
    apiserver_workers: int = 1

    def requestheader(self, pki: Pki) -> RequestHeaderConfig:
        """Who may assert users in request headers, and in which headers."""
        given = {
            "allowed_names": self.requestheader_allowed_names,
            "username_headers": self.requestheader_username_headers,
            "group_headers": self.requestheader_group_headers,
            "extra_headers_prefix": self.requestheader_extra_headers_prefix,
        }
        return RequestHeaderConfig(
            self.requestheader_client_ca_file or pki.front_proxy_ca_cert,
            **{k: v for k, v in given.items() if v is not None},
        )

    @property
    def encryption_config_path(self) -> Path | None:
        """The EncryptionConfiguration in use (k3s's generated one with
        --secrets-encryption unless a file is named)."""
        if self.encryption_provider_config:
            return Path(self.encryption_provider_config)
        if self.secrets_encryption:
            return self.data_dir / "server" / "cred" / "encryption-config.json"
        return None

    @property
    def endpoint(self) -> str:
        """The datastore: the flag's, else the embedded etcd member this data dir runs
        (as its last start recorded it), else the SQLite file."""
        if self.datastore_endpoint:
            return self.datastore_endpoint
        from pyk8s.server.embedded_etcd import recorded_endpoint

        embedded = recorded_endpoint(self.data_dir)
        return embedded or f"sqlite://{self.data_dir / 'server' / 'db' / 'state.db'}"

    @property
    def kubeconfig(self) -> Path:
        return self.write_kubeconfig or self.data_dir / "kubeconfig.yaml"


def _host_addresses() -> tuple[list[str], list[str]]:
    names = {socket.gethostname(), socket.getfqdn()}
    ips: set[str] = set()
    for name in list(names):
        try:
            for info in socket.getaddrinfo(name, None):
                ips.add(str(info[4][0]))
        except OSError:
            pass
    return sorted(n for n in names if n), sorted(ips)


def _write_secret(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text + "\n")


def _node_token(data_dir: Path) -> str:
    """The cluster's join token, a bootstrap token ``<id>.<secret>`` made once and kept
    (DATA_DIR/server/token); a secret of an older format is replaced."""
    path = data_dir / "server" / "token"
    if path.exists():
        token = path.read_text().strip()
        if BOOTSTRAP_TOKEN.match(token):
            return token
    token = new_bootstrap_token()
    _write_secret(path, token)
    return token


def full_node_token(ca_cert: Path, token: str) -> str:
    """k3s's token format ``K10<sha256 of the CA>::<bootstrap token>``: an agent given it
    can check the CA it downloads before trusting the server."""
    digest = hashlib.sha256(ca_cert.read_bytes()).hexdigest()
    return f"K10{digest}::{token}"


class RunningAPIServer:
    """An API server started on a TLS port; ``stop()`` shuts it down cleanly."""

    def __init__(
        self,
        server: APIServer,
        runner: web.AppRunner,
        store: Store,
        pki: Pki,
        url: str,
        renewer: CertRenewer | CertFollower | None = None,
    ) -> None:
        self.server = server
        self.runner = runner
        self.store = store
        self.pki = pki
        self.url = url
        self.renewer = renewer

    async def stop(self) -> None:
        if self.renewer is not None:
            await self.renewer.stop()
        await self.server.stop()
        await self.runner.cleanup()
        await self.store.close()


def _sans(opts: Options) -> tuple[list[str], list[str]]:
    """The serving certificate's host names and IP addresses."""
    hostnames, ips = _host_addresses()
    extra_ips = [opts.service_cidr and _first_service_ip(opts.service_cidr)]
    if opts.bind_address not in ("0.0.0.0", "::"):
        extra_ips.append(opts.bind_address)
    advertise = opts.advertise_address or "127.0.0.1"
    return hostnames, sorted(set(ips + [ip for ip in extra_ips if ip] + [advertise]))


def local_url(opts: Options) -> str:
    """Where this host's own components reach the API server."""
    host = "127.0.0.1" if opts.bind_address in ("0.0.0.0", "::", "") else opts.bind_address
    return f"https://{host}:{opts.https_listen_port}"


def workers_problem(opts: Options) -> str:
    """Why ``--apiserver-workers`` cannot be used with these options (one line), or ""."""
    workers = opts.apiserver_workers
    if workers < 1:
        return f"--apiserver-workers {workers}: must be at least 1"
    if workers == 1:
        return ""
    flag = f"--apiserver-workers {workers}"
    if opts.cluster_init or opts.join_server:
        return (
            f"{flag} needs the SQLite datastore, not the embedded etcd (--cluster-init, --server)"
        )
    endpoint = opts.endpoint
    if not endpoint.startswith("sqlite://"):
        kind = endpoint.split("://")[0]
        return f"{flag} needs the SQLite datastore, not {kind} (see --datastore-endpoint)"
    if ":memory:" in endpoint:
        return f"{flag} needs a SQLite file the processes share, not :memory:"
    if opts.secrets_encryption:
        # pyk8s secrets-encrypt rotates the keys in the primary's process only: a worker
        # would keep encrypting with, and failing to read, the keys it started with
        return f"{flag} cannot be used with --secrets-encryption (key rotation is per process)"
    if opts.audit_log_path not in ("", "-"):
        # each process would append to and rotate the same file on its own
        return f"{flag} cannot write one --audit-log-path file from several processes (use -)"
    return ""


async def start_apiserver(opts: Options, *, worker: bool = False) -> RunningAPIServer:
    """Start serving. ``worker``: one of ``--apiserver-workers``' extra processes, which
    writes no file (PKI, token, kubeconfig), opens the shared store and serves the port
    beside the primary with its own watch cache (see :class:`Config`'s ``worker``)."""
    opts.data_dir.mkdir(parents=True, exist_ok=True)
    hostnames, sans_ips = _sans(opts)
    advertise = opts.advertise_address or "127.0.0.1"
    config = Config(
        service_cidr=opts.service_cidr,
        advertise_address=advertise,
        secure_port=opts.https_listen_port,
        hostname=opts.node_name,
        # NodeRestriction is off in kube-apiserver's defaults but on in kubeadm's and
        # k3s's, as here: with the Node authorizer it keeps a kubelet to its own node
        enable_admission_plugins=("NodeRestriction", *opts.enable_admission_plugins),
        disable_admission_plugins=opts.disable_admission_plugins,
        admission_config=opts.admission_config,
        max_requests_inflight=opts.max_requests_inflight,
        max_mutating_requests_inflight=opts.max_mutating_requests_inflight,
        enable_priority_and_fairness=opts.enable_priority_and_fairness,
        authorization_modes=opts.authorization_modes,
        anonymous=opts.anonymous_auth,
        kubelet_certificate_authority=opts.kubelet_certificate_authority,
        worker=worker,
    )
    if worker:  # the primary made them and renews them
        pki = Pki.at(opts.data_dir / "server" / "tls")
    else:
        pki = await asyncio.to_thread(
            ensure_pki, opts.data_dir / "server", hostnames=hostnames, ips=sans_ips
        )
        token = _node_token(opts.data_dir)
        _write_secret(opts.data_dir / "server" / "node-token", full_node_token(pki.ca_cert, token))
    # upstream's order: a front proxy's asserted user first, then client certificates
    config.requestheader = opts.requestheader(pki)
    authenticators: list[Authenticator] = [
        RequestHeaderAuthenticator(config.requestheader),
        X509Authenticator(pki.ca_cert),
    ]
    if opts.token_auth_file:
        authenticators.append(TokenFileAuthenticator(opts.token_auth_file))
    holder: list[APIServer] = []

    def uid_lookup(plural: str) -> UidLookup:
        """The live object's uid from the watch cache, so that tokens of deleted service
        accounts (or pods) stop working, as upstream's lookup does."""

        async def lookup(namespace: str, name: str) -> str | None:
            resource = REGISTRY.get("", "v1", plural)
            if not holder or resource is None:
                return None
            entry = holder[0].cache.objects.get(resource.key(namespace, name))
            return None if entry is None else str(entry.obj["metadata"].get("uid", ""))

        return lookup

    authenticators.append(
        ServiceAccountTokenAuthenticator(
            pki,
            service_account_lookup=uid_lookup("serviceaccounts"),
            pod_lookup=uid_lookup("pods"),
        )
    )

    def kube_system_secret(name: str) -> dict[str, Any] | None:
        """A kube-system Secret from the watch cache (a bootstrap token's)."""
        resource = REGISTRY.get("", "v1", "secrets")
        if not holder or resource is None:
            return None
        entry = holder[0].cache.objects.get(resource.key("kube-system", name))
        return None if entry is None else entry.obj

    # kubeadm's --enable-bootstrap-token-auth, in upstream's place after service accounts
    authenticators.append(BootstrapTokenAuthenticator(kube_system_secret))
    encryption_config = opts.encryption_config_path
    rules: list[Rule] = []
    if encryption_config is not None:
        if opts.secrets_encryption and not opts.encryption_provider_config:
            ensure_config(encryption_config)
        rules = load_encryption_config(encryption_config)
    auditor = _auditor(opts)
    store = await open_store(opts.endpoint, shared=opts.apiserver_workers > 1)
    if encryption_config is not None:
        store = EncryptingStore(store, rules)
    server = APIServer(
        store,
        authenticator=AuthenticatorChain(authenticators),
        config=config,
        pki=pki,
        auditor=auditor,
    )
    if opts.secrets_encryption and isinstance(store, EncryptingStore):
        assert encryption_config is not None
        server.secrets_encryption = SecretsEncryption(encryption_config, store, server.handlers)
    holder.append(server)
    try:
        await server.start()
        if opts.deploy_manifests and not worker:  # k3s's CRDs, before the first request
            await manifests.register_crds(
                server.handlers, manifests.wanted_crds(opts.helm_controller)
            )
        # each request counts against the in-flight limits from when it is read
        runner = ArrivalRunner(
            server.app,
            server.arrive,
            access_log=None,
            handle_signals=False,
            shutdown_timeout=2.0,
        )
        await runner.setup()
        ssl_context = server_ssl_context(
            pki, extra_client_cas=[config.requestheader.client_ca_file]
        )
        # --bind-address 0.0.0.0 (the default) serves both families, as upstream's
        await tcp_site(
            runner,
            opts.bind_address,
            opts.https_listen_port,
            ssl_context,
            reuse_port=opts.apiserver_workers > 1,
        ).start()
    except BaseException:
        await server.stop()
        await store.close()
        raise
    url = local_url(opts)
    if worker:
        log.info(
            "apiserver worker ready",
            extra={"url": url, "pid": os.getpid(), "datastore": "sqlite (shared)"},
        )
        follower = CertFollower(pki, ssl_context)
        follower.start()
        return RunningAPIServer(server, runner, store, pki, url, follower)
    write_kubeconfig(opts.kubeconfig, server=url, pki=pki)
    renewer = CertRenewer(
        opts.data_dir / "server",
        ssl_context,
        hostnames=hostnames,
        ips=sans_ips,
        on_admin_renewed=lambda p: write_kubeconfig(opts.kubeconfig, server=url, pki=p),
    )
    renewer.start()
    log.info(
        "apiserver ready",
        extra={
            "url": url,
            "kubeconfig": str(opts.kubeconfig),
            "datastore": opts.endpoint.split("://")[0],
        },
    )
    return RunningAPIServer(server, runner, store, pki, url, renewer)


def _auditor(opts: Options) -> audit.Auditor | None:
    """Audit logging as the flags ask (none without both a policy and a log path, as
    upstream: no policy audits nothing, no backend writes nothing)."""
    if not opts.audit_policy_file or not opts.audit_log_path:
        return None
    policy = audit.load_policy(opts.audit_policy_file)
    backend = audit.LogBackend(
        opts.audit_log_path,
        max_size_mb=opts.audit_log_maxsize,
        max_backups=opts.audit_log_maxbackup,
        max_age_days=opts.audit_log_maxage,
    )
    return audit.Auditor(policy, backend)


def _snapshot_schedule(opts: Options) -> asyncio.Task[None] | None:
    """k3s's scheduled datastore snapshots, when a cron schedule is set."""
    if not opts.etcd_snapshot_schedule_cron:
        return None
    from pyk8s.server import snapshots

    target = snapshots.Target(
        opts.endpoint,
        opts.etcd_snapshot_dir or snapshots.default_dir(opts.data_dir),
        opts.node_name,
    )
    return asyncio.create_task(
        snapshots.run_schedule(
            target, opts.etcd_snapshot_schedule_cron, opts.etcd_snapshot_retention
        )
    )


def _deploy_manifests(opts: Options) -> tuple[asyncio.Event, asyncio.Task[None]] | None:
    """k3s's DATA_DIR/server/manifests and Helm controller (:mod:`pyk8s.server.manifests`),
    in-process with the admin kubeconfig (the directory is on this host)."""
    if not opts.deploy_manifests:
        return None
    stop = asyncio.Event()
    lease = opts.helm_lease or manifests.helm_lease({}, opts.node_name)
    job = manifests.run(
        opts.kubeconfig, opts.data_dir, opts.helm_controller, stop, _node(opts), lease
    )
    return stop, asyncio.create_task(job, name="deploy")


async def _start_embedded_etcd(opts: Options) -> tuple[Supervisor, Any] | None:
    """Start this host's etcd member when the server runs one (--cluster-init, a join
    with --server, or a data dir that holds a member) and point the datastore at it;
    None otherwise. See :mod:`pyk8s.server.embedded_etcd`."""
    from pyk8s.server import bootstrap, embedded_etcd

    member = embedded_etcd.Member(
        opts.data_dir,
        opts.advertise_address or "127.0.0.1",
        opts.bind_address,
        opts.etcd_client_port,
        opts.etcd_peer_port,
        opts.node_name,
    )
    restart = member.exists()
    if not (restart or opts.cluster_init or opts.join_server):
        return None
    if opts.datastore_endpoint:
        raise ValueError(
            "--datastore-endpoint cannot be used with the embedded etcd "
            "(--cluster-init, --server, or a data dir holding an etcd member)"
        )
    etcd_urls: list[str] = []
    if opts.join_server and not restart:
        etcd_urls = await bootstrap.fetch(opts.join_server, opts.join_token, opts.data_dir)
    hostnames, ips = _sans(opts)
    pki = await asyncio.to_thread(
        ensure_pki, opts.data_dir / "server", hostnames=hostnames, ips=ips
    )
    bootstrap.ensure_server_token(opts.data_dir, pki.ca_cert)
    await asyncio.to_thread(member.ensure_certs, pki)
    initial, state = f"{member.name()}={member.peer_url}", "new"
    if etcd_urls:
        initial = await embedded_etcd.member_add(etcd_urls, member.tls(pki), member)
        state = "existing"
    supervisor = Supervisor()
    supervisor.add_command("etcd", member.args(pki, initial, state), log=member.log_file)
    await supervisor.start()
    try:
        await embedded_etcd.wait_ready(member, pki, None, 120.0)
    except BaseException:
        await supervisor.stop()
        raise
    log.info(
        "etcd member ready",
        extra={"member": member.name(), "peer": member.peer_url, "state": state},
    )
    opts.datastore_endpoint = member.endpoint(pki)
    member.save(pki)
    if opts.cluster_init and not restart:
        try:
            await embedded_etcd.migrate_sqlite(opts.data_dir, opts.datastore_endpoint)
        except BaseException:
            await supervisor.stop()
            raise
    return supervisor, member


def _node(opts: Options) -> str:
    """This server's Node name (its agent's): --node-name, else the host name."""
    return (opts.node_name or socket.gethostname()).lower()


def _etcd_members(
    opts: Options, pki: Pki, etcd: tuple[Supervisor, Any] | None
) -> tuple[asyncio.Event, asyncio.Task[None]] | None:
    """With an embedded etcd member: k3s's managed-etcd node controllers (annotate this
    server's Node, remove the member of a deleted server Node;
    :mod:`pyk8s.server.etcd_members`), in-process with the admin kubeconfig."""
    if etcd is None:
        return None
    from pyk8s.server import etcd_members

    member = etcd[1]
    stop = asyncio.Event()
    job = etcd_members.run(
        opts.kubeconfig,
        _node(opts),
        member.name(),
        member.advertise_address,
        (member.local_target, member.tls(pki)),
        stop,
    )
    return stop, asyncio.create_task(job, name="etcd-members")


def worker_options_file(data_dir: Path) -> Path:
    return data_dir / "server" / "apiserver-worker-options"


def write_worker_options(opts: Options) -> Path:
    """The primary's options for its workers, in a file only this user reads (they name
    the token file and the encryption configuration). Pickled rather than re-parsed from
    the command line: what a worker must serve is exactly what the primary resolved from
    its flags (the advertise address ``pyk8s server`` picked, the admission
    configuration it loaded, the datastore its data dir records)."""
    path = worker_options_file(opts.data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        pickle.dump(opts, f)
    return path


def read_worker_options(path: Path) -> Options:
    """What :func:`write_worker_options` wrote (a file of this user's own, 0600)."""
    with path.open("rb") as f:
        opts = pickle.load(f)  # written by this user's own server, mode 0600
    if not isinstance(opts, Options):
        raise ValueError(f"{path}: not an API server's options")
    return opts


def listeners(port: int) -> int:
    """How many sockets listen on TCP ``port`` in this network namespace (both families),
    from /proc/net/tcp{,6}: with SO_REUSEPORT, one per serving process."""
    want = f":{port:04X}"
    count = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    if len(fields) > 3 and fields[3] == "0A" and fields[1].endswith(want):
                        count += 1
        except OSError:
            continue
    return count


#: how long the primary waits for its workers to listen before saying it is ready
WORKERS_READY_TIMEOUT = 60.0


async def _start_workers(opts: Options, stop: asyncio.Event) -> Supervisor | None:
    """With ``--apiserver-workers N`` (N>1): the N-1 worker processes, supervised (forked
    from the zygote when there is one), once this process has made the bootstrap objects
    and policy; returns when they all listen on the port, when ``stop`` is set, or after
    :data:`WORKERS_READY_TIMEOUT` with a warning (the primary serves meanwhile)."""
    if opts.apiserver_workers <= 1:
        return None
    path = write_worker_options(opts)
    level = logging.getLevelName(logging.getLogger().getEffectiveLevel()).lower()
    workers = Supervisor()
    for _ in range(opts.apiserver_workers - 1):
        workers.add("apiserver-worker", "--options", str(path), "--log-level", level)
    await workers.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WORKERS_READY_TIMEOUT
    while listeners(opts.https_listen_port) < opts.apiserver_workers:
        if stop.is_set():
            break
        if loop.time() > deadline:
            log.warning(
                "apiserver workers not listening yet; serving meanwhile",
                extra={"workers": opts.apiserver_workers - 1},
            )
            break
        await asyncio.sleep(0.05)
    else:
        log.info("apiserver workers listening", extra={"workers": opts.apiserver_workers - 1})
    return workers


def _first_service_ip(cidr: str) -> str:
    """The kubernetes Service's address: the first of the primary service CIDR."""
    import ipaddress

    return str(ipaddress.ip_network(cidr.split(",")[0].strip()).network_address + 1)


async def run_until_signalled(opts: Options, components: Sequence[Sequence[str]] = ()) -> None:
    """Serve until SIGTERM/SIGINT; ``components`` (``(name, *extra_args)``, e.g.
    ``("controller-manager",)``) run as supervised child processes, each with its own
    identity (:mod:`pyk8s.server.identities`, :mod:`pyk8s.server.addon_identities`;
    the admin kubeconfig for one that has none)."""
    if opts.etcd_snapshot_schedule_cron:
        from pyk8s.controllers.cronjob import Schedule

        Schedule.parse(opts.etcd_snapshot_schedule_cron)  # a bad spec stops us before start
    etcd = await _start_embedded_etcd(opts)
    supervisor = Supervisor()
    gate = startgate.gate_file(opts.data_dir)
    join_token = _node_token(opts.data_dir)
    if components:  # they import while the API server starts (pyk8s.server.startgate)
        hostnames, ips = _sans(opts)
        pki = await asyncio.to_thread(
            ensure_pki, opts.data_dir / "server", hostnames=hostnames, ips=ips
        )
        identities = write_component_kubeconfigs(pki, local_url(opts), join_token)
        startgate.close_gate(gate)
        for name, *extra in components:
            kubeconfig = identities.get(name, opts.kubeconfig)
            own = component_flags(name, pki)
            if name == "kubelet":  # no TLS bootstrap on the way to this node's Ready
                ensure_node_client_certificate(pki, [*own, *extra])
            supervisor.add(name, "--kubeconfig", str(kubeconfig), *own, *extra)
        await supervisor.start()
    try:
        running = await start_apiserver(opts)
    except BaseException:
        await supervisor.stop()
        if etcd is not None:
            await etcd[0].stop()
        raise
    if etcd is not None:
        from pyk8s.server import bootstrap

        running.server.own_auth_paths[bootstrap.SERVER_BOOTSTRAP_PATH] = bootstrap.handler(
            opts.data_dir, etcd[1].client_url
        )
    stop = stop_on_signals()
    # the watch cache's heap, frozen as it grows, and fewer young collections (see the module)
    freezer = asyncio.create_task(gcfreeze.run(young=gcfreeze.YOUNG_THRESHOLD), name="gc-freeze")
    # the C heap's free memory back to the system once there is much of it (see the module)
    trimmer = asyncio.create_task(malloctrim.run(), name="malloc-trim")
    if not components:  # pyk8s apiserver: for components started by hand
        write_component_kubeconfigs(running.pki, running.url, join_token)
    handlers = running.server.handlers
    writes = [ensure_component_policy(handlers), ensure_join_token(handlers, join_token)]
    if opts.cluster_config:
        writes.append(clusterconfig.publish(handlers, opts.cluster_config))
    if components:  # pyk8s server, as k3s deploys local-path; not pyk8s apiserver alone
        writes.append(ensure_local_storage(handlers))
    # what an add-on's manifest installs as an administrator, before it starts
    writes += [create_missing(handlers, installs(name)) for name, *_extra in components]
    if any(name == "controller-manager" for name, *_extra in components):
        writes.append(create_missing(handlers, controller_service_accounts()))
    await asyncio.gather(*writes)  # at once: the store commits concurrent writes together
    if components:
        startgate.open_gate(gate)
    snapshots = _snapshot_schedule(opts)
    deployer = _deploy_manifests(opts)
    members = _etcd_members(opts, running.pki, etcd)
    workers = await _start_workers(opts, stop)
    print(f"pyk8s apiserver ready at {running.url}; kubeconfig: {opts.kubeconfig}", flush=True)
    await stop.wait()
    log.info("shutting down")
    freezer.cancel()
    trimmer.cancel()
    if snapshots is not None:
        snapshots.cancel()
    for job in (deployer, members):
        if job is not None:
            job[0].set()
            await job[1]
    if workers is not None:  # they serve until the primary stops
        await workers.stop()
        worker_options_file(opts.data_dir).unlink(missing_ok=True)
    await supervisor.stop()
    await running.stop()
    if etcd is not None:
        await etcd[0].stop()
