"""The web dashboard in a real browser: Debian's headless Chromium driven by Selenium
(through Debian's chromedriver; nothing is downloaded) against the control plane with
simulated nodes that the other e2e_sim tests share.

An admin signs in with ``?token=`` (a ServiceAccount token bound to cluster-admin) and
sees a Deployment scale from 1 to 3 without a reload, opens a pod's trace and log tail; a
user whose Role covers one namespace sees only that namespace. Screenshots go to
``$PYK8S_TEST_ARTIFACTS/dashboard`` (default: the session's pytest temp directory).
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_sim.conftest import Cluster

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"

webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.chrome.options import Options  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = os.environ.get("PYK8S_TEST_ARTIFACTS")
    out = Path(base) / "dashboard" if base else tmp_path_factory.mktemp("dashboard-artifacts")
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    if not (shutil.which(CHROMIUM) and shutil.which(CHROMEDRIVER)):
        pytest.fail("Debian's chromium and chromium-driver are needed (scripts/setup.sh --test)")
    opts = Options()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--ignore-certificate-errors",  # the cluster's own CA
        "--window-size=1400,1800",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium')}",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()


def until(browser: Any, artifacts: Path, check: Any, what: str, within: float = 45) -> Any:
    """Wait for ``check(browser)``; on a timeout, keep a screenshot and the page's text."""
    try:
        return WebDriverWait(browser, within).until(check)
    except TimeoutException:
        name = what.replace(" ", "-")
        browser.save_screenshot(str(artifacts / f"failed-{name}.png"))
        text = browser.execute_script("return document.body.innerText")
        (artifacts / f"failed-{name}.txt").write_text(text)
        raise AssertionError(f"{what}: not seen within {within}s; the page says:\n{text}") from None


def goto(browser: Any, url: str) -> None:
    """Load ``url``, again if Chromium dropped it because this host's network changed
    (other tests add and remove interfaces; Chromium aborts requests when they do)."""
    for _attempt in range(10):
        browser.get(url)
        if "ERR_NETWORK_CHANGED" not in browser.page_source:
            return
    raise AssertionError(f"{url}: the network kept changing")


RBAC = "rbac.authorization.k8s.io"


def pod(ns: str, name: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"containers": [{"name": "c", "image": "busybox:1.36"}]},
    }


def token_for(
    cluster: Cluster, ns: str, name: str, *, cluster_admin: bool, more: list[dict[str, Any]]
) -> str:
    """A ServiceAccount's token: bound to cluster-admin, or to ``view`` in ``ns`` only;
    ``more`` objects are created with it (one kubectl apply: each kubectl costs seconds)."""
    subject = [{"kind": "ServiceAccount", "name": name, "namespace": ns}]
    role = {
        "apiGroup": RBAC,
        "kind": "ClusterRole",
        "name": "cluster-admin" if cluster_admin else "view",
    }
    binding: dict[str, Any] = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRoleBinding" if cluster_admin else "RoleBinding",
        "metadata": {"name": f"{ns}-{name}"} | ({} if cluster_admin else {"namespace": ns}),
        "roleRef": role,
        "subjects": subject,
    }
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns}}
    items = [*[o for o in more if o["kind"] == "Namespace"], sa, binding]
    items += [o for o in more if o["kind"] != "Namespace"]
    cluster.kubectl(
        "apply", "-f", "-", input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items})
    )
    return cluster.kubectl("create", "token", name, "-n", ns).strip()


def sign_in(browser: Any, artifacts: Path, cluster: Cluster, token: str, ns: str) -> None:
    base = f"https://127.0.0.1:{cluster.server.port}/dashboard/"
    browser.delete_all_cookies()
    goto(browser, f"{base}?token={token}")
    # the token became a cookie and left the address
    assert browser.current_url == base, browser.execute_script("return document.body.innerText")
    cookie = browser.get_cookie("pyk8s-dashboard-token")
    assert cookie and cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    goto(browser, f"{base}?namespace={ns}")
    until(browser, artifacts, lambda b: b.find_element(By.ID, "live").text == "live", "live")


def cells(browser: Any, table: str, key: str) -> list[str]:
    """The cells of one row, read in one call (the page re-renders rows as watches
    deliver, so element handles go stale)."""
    cells: list[str] = browser.execute_script(
        "const r = document.querySelector(`#${arguments[0]} tr[data-key='${arguments[1]}']`);"
        "return r ? Array.from(r.cells, c => c.textContent) : [];",
        table,
        key,
    )
    return cells


def column(browser: Any, selector: str, index: int = 0) -> list[str]:
    """The ``index``th cell of every row that ``selector`` matches."""
    texts: list[str] = browser.execute_script(
        "return Array.from(document.querySelectorAll(arguments[0]),"
        " r => r.cells[arguments[1]].textContent);",
        selector,
        index,
    )
    return texts


def test_admin_sees_a_scale_up_live_and_a_pods_trace(
    cluster: Cluster, ns: str, browser: Any, artifacts: Path
) -> None:
    web = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": ns, "labels": {"app": "web"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "busybox", "image": "busybox:1.36"}]},
            },
        },
    }
    token = token_for(cluster, ns, "dash-admin", cluster_admin=True, more=[web])
    sign_in(browser, artifacts, cluster, token, ns)
    key = f"Deployment/{ns}/web"
    until(browser, artifacts, lambda b: cells(b, "workloads", key)[3:5] == ["1", "1"], "at 1")
    browser.execute_script("window.notReloaded = true")
    browser.save_screenshot(str(artifacts / "1-deployment-at-1.png"))

    cluster.kubectl("scale", "deployment", "web", "--replicas=3", "-n", ns)
    until(
        browser,
        artifacts,
        lambda b: cells(b, "workloads", key)[3:8] == ["3", "3", "3", "3", "complete"],
        "at 3",
    )
    assert browser.execute_script("return window.notReloaded === true"), "the page reloaded"
    pods = cluster.pods(ns, "app=web")
    assert len(pods) == 3
    for p in pods:
        row = cells(browser, "pods", f"{ns}/{p['metadata']['name']}")
        assert row[2:4] == ["Running", "1/1"] and row[5] == p["spec"]["nodeName"], row
    nodes = column(browser, "#nodes tbody tr", 1)
    assert len(nodes) >= 3 and set(nodes) == {"Ready"}, nodes
    browser.save_screenshot(str(artifacts / "2-deployment-at-3.png"))

    # a pod's journey and log tail
    name = pods[0]["metadata"]["name"]
    browser.execute_script(
        "Array.from(document.querySelectorAll('a.pod-link'))"
        ".find(a => a.textContent === arguments[0]).click()",
        name,
    )
    until(browser, artifacts, lambda b: b.find_element(By.ID, "detail-name").text, "detail")
    assert browser.find_element(By.ID, "detail-name").text == f"{ns}/{name}"

    def trace_steps(b: Any) -> list[str]:
        return column(b, "#trace tbody tr")

    until(
        browser,
        artifacts,
        lambda b: {"Created", "Admitted", "SchedulingCycle", "Ready"} <= set(trace_steps(b)),
        "trace",
    )
    steps = trace_steps(browser)
    assert steps[0] == "Created" and steps.index("Admitted") < steps.index("Ready"), steps
    assert browser.find_element(By.ID, "trace-result").text.startswith("result: Ready")
    # simulated nodes run no containers, so the log tail shows why there is no log
    until(browser, artifacts, lambda b: b.find_element(By.ID, "log").text, "log")
    log_text = browser.find_element(By.ID, "log").text
    assert log_text, log_text
    browser.save_screenshot(str(artifacts / "3-pod-trace-and-log.png"))


def test_a_namespace_scoped_user_sees_only_that_namespace(
    cluster: Cluster, ns: str, browser: Any, artifacts: Path
) -> None:
    other = f"{ns}-other"
    namespace = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": other}}
    try:
        token = token_for(
            cluster,
            ns,
            "dash-viewer",
            cluster_admin=False,
            more=[namespace, pod(other, "hidden"), pod(ns, "mine")],
        )
        sign_in(browser, artifacts, cluster, token, ns)
        until(browser, artifacts, lambda b: cells(b, "pods", f"{ns}/mine"), "own pod")
        options = browser.find_elements(By.CSS_SELECTOR, "#namespace option")
        assert [o.get_attribute("value") for o in options] == [ns]
        assert browser.find_element(By.ID, "user").text == f"system:serviceaccount:{ns}:dash-viewer"
        assert column(browser, "#pods tbody tr", 1) == ["mine"]
        assert not browser.find_element(By.ID, "nodes-section").is_displayed()
        # the API behind the page refuses the other namespace to this user
        status = browser.execute_script(
            "return fetch(arguments[0]).then(r => r.status)",
            f"/dashboard/api/api/v1/namespaces/{other}/pods",
        )
        assert status == 403
        browser.save_screenshot(str(artifacts / "4-namespace-viewer.png"))
    finally:
        cluster.kubectl("delete", "namespace", other, "--wait=false")
