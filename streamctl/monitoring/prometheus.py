"""The monitoring node: a Prometheus server (Debian's `prometheus` binary) scraping the gateway's /metrics,
with alert rules a Citus operator wants, run as a local process under the state directory.

`prometheus.yml` is streamctl's (rewritten when the topology changes, then the server reloads);
`alerts.yml` is the user's: written once with the topology's bounds, never overwritten (delete it to get
the defaults again). The server listens on monitoring.bind:port (127.0.0.1 by default).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
import urllib.request

from streamctl.atomic import write_file
from streamctl.config.model import Topology
from streamctl.context import ClusterContext
from streamctl.errors import PreflightError
from streamctl.readiness import Readiness

NODE = "prometheus"  # how its step and events name it
LOOPBACK = frozenset({"127.0.0.1", "::1", "localhost"})


def rules_text(t: Topology) -> str:
    m = t.monitoring
    hold = f"{m.alert_for:g}s"
    return f"""# Alert rules for cluster {t.cluster}: written once by streamctl, then yours to edit (streamctl never
# overwrites this file; delete it and run `streamctl up` to get these defaults again).
groups:
  - name: streamctl
    rules:
      - alert: StreamctlNodeDown
        expr: streamctl_node_up == 0
        for: {hold}
        labels: {{severity: critical}}
        annotations:
          summary: "{{{{ $labels.node }}}} ({{{{ $labels.role }}}}) does not answer"
      - alert: StreamctlGatewayDown
        expr: up{{job="streamctl-gateway"}} == 0
        for: {hold}
        labels: {{severity: critical}}
        annotations:
          summary: "Prometheus cannot scrape the streamctl gateway"
      - alert: StreamctlReplicationLagHigh
        expr: >-
          streamctl_replication_lag_bytes > {m.lag_bound_bytes}
          or streamctl_replication_lag_seconds > {m.lag_bound_seconds:g}
        for: {hold}
        labels: {{severity: warning}}
        annotations:
          summary: "{{{{ $labels.replica }}}} lags behind the analytics primary"
      - alert: StreamctlReplicaDisconnected
        expr: streamctl_replication_slot_active == 0
        for: {hold}
        labels: {{severity: warning}}
        annotations:
          summary: "{{{{ $labels.replica }}}} is not connected to its replication slot"
      - alert: StreamctlCitusSkewHigh
        expr: streamctl_citus_skew_ratio > {m.skew_bound:g}
        for: {hold}
        labels: {{severity: warning}}
        annotations:
          summary: "{{{{ $labels.table }}}}: the busiest node holds {{{{ $value }}}}x the mean"
      - alert: StreamctlWalArchivingFailing
        expr: increase(streamctl_wal_archive_failed_total[5m]) > 0
        labels: {{severity: critical}}
        annotations:
          summary: "WAL archiving fails on {{{{ $labels.node }}}}"
"""


class PrometheusServer:
    """One cluster's Prometheus process: its files, whether it runs, and how to start, reload and stop it."""

    def __init__(self, ctx: ClusterContext) -> None:
        self.ctx = ctx
        self.spec = ctx.topology.monitoring
        self.dir = ctx.store.root / "monitoring"
        self.bind = self.spec.bind or ctx.topology.bind
        self.config_file = self.dir / "prometheus.yml"
        self.rules_file = self.dir / "alerts.yml"
        self.pid_file = self.dir / "prometheus.pid"
        self.log_file = self.dir / "prometheus.log"

    # Where the server reads the rules, the gateway's token and the CA (the container's copies on Docker).
    @property
    def rules_ref(self) -> str:
        return str(self.rules_file)

    @property
    def token_ref(self) -> str:
        return str(self.ctx.store.gateway_token_file)

    @property
    def ca_ref(self) -> str:
        return str(self.ctx.ca_path())

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.bind in ("0.0.0.0", "::") else self.bind
        return f"http://{host}:{self.spec.port}"

    def config_text(self) -> str:
        """The scrape of the gateway (with its token beyond loopback, its CA with TLS); Patroni's REST API
        joins as a second job once HA exists."""
        g = self.ctx.topology.gateway
        host = "127.0.0.1" if g.host in ("0.0.0.0", "::") else g.host
        interval = f"{self.spec.scrape_interval:g}s"
        lines = [
            "# managed by streamctl (rewritten by `streamctl up`): edit alerts.yml, not this file",
            "global:",
            f"  scrape_interval: {interval}",
            f"  evaluation_interval: {interval}",
            f"  external_labels: {{cluster: {self.ctx.topology.cluster}}}",
            "rule_files:",
            f"  - {self.rules_ref}",
            "scrape_configs:",
            "  - job_name: streamctl-gateway",
            f"    scrape_timeout: {min(self.spec.scrape_interval, 10):g}s",
            f"    scheme: {'https' if g.tls else 'http'}",
            "    static_configs:",
            f"      - targets: ['{host}:{g.port}']",
        ]
        if g.host not in LOOPBACK:
            lines += ["    authorization:", "      type: Bearer",
                      f"      credentials_file: {self.token_ref}"]
        if g.tls:
            lines += ["    tls_config:", f"      ca_file: {self.ca_ref}"]
        # HA hook: a `patroni` job scraping each member's REST API /metrics goes here once HA exists.
        return "\n".join(lines) + "\n"

    def binary(self) -> str:
        found = shutil.which("prometheus")
        if found is None:
            raise PreflightError("monitoring.prometheus is on but the prometheus binary is not installed",
                                 hint="apt-get install prometheus (Debian's package), or set "
                                      "monitoring.prometheus: false")
        return found

    def pid(self) -> int | None:
        from streamctl.backends.local.recipes import pid_alive, read_pid

        pid = read_pid(self.pid_file)
        return pid if pid is not None and pid_alive(pid, "prometheus") else None

    def pending(self) -> list[str]:
        out = []
        if not self.config_file.exists() or self.config_file.read_text() != self.config_text():
            out.append(f"write {self.config_file.name}")
        if not self.rules_file.exists():
            out.append(f"write {self.rules_file.name} (alert rules)")
        if self.pid() is None:
            out.append(f"start prometheus on {self.bind}:{self.spec.port}")
        return out

    def write_files(self) -> bool:
        """Write prometheus.yml when it changed and alerts.yml when missing; True when the former changed."""
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        changed = not self.config_file.exists() or self.config_file.read_text() != self.config_text()
        if changed:
            write_file(self.config_file, self.config_text())
        if not self.rules_file.exists():
            write_file(self.rules_file, rules_text(self.ctx.topology))
        return changed

    def ensure(self) -> None:
        """Write what changed, start the server or make it reload, and wait until it is ready."""
        self.binary()
        changed = self.write_files()
        pid = self.pid()
        if pid is None:
            self._start()
        elif changed:
            os.kill(pid, signal.SIGHUP)  # Prometheus reloads its configuration and rules on SIGHUP
        Readiness(f"prometheus on {self.url}", self.ready, timeout=60, interval=0.1,
                  logs=self._logs, hint=f"see {self.log_file}", alive=lambda: self.pid() is not None).wait()

    def _start(self) -> None:
        data = self.dir / "data"
        data.mkdir(exist_ok=True)
        argv = [self.binary(), f"--config.file={self.config_file}", f"--storage.tsdb.path={data}",
                f"--web.listen-address={self.bind}:{self.spec.port}", "--storage.tsdb.retention.time=15d"]
        with self.log_file.open("ab") as log:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True)
        self.pid_file.write_text(f"{proc.pid}\n")

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/-/ready", timeout=2) as resp:
            return bool(resp.status == 200)

    def _logs(self) -> list[str]:
        try:
            return self.log_file.read_text(errors="replace").splitlines()[-20:]
        except OSError:
            return []

    def stop(self) -> None:
        pid = self.pid()
        if pid is None:
            return
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        while self.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.pid() is not None:
            os.kill(pid, signal.SIGKILL)
        self.pid_file.unlink(missing_ok=True)
