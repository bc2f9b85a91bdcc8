"""Environment files (`environments/<name>.yaml`) validated into typed objects before anything runs.

A bad file ends the run with exit code 2 and one message naming the file, the key, its line and what
is wrong. Secrets are references (`${NAME}`, `${file:path}`), resolved by `resolve_secrets`.
"""

from runbook.config.app import ConfigFile, Service
from runbook.config.checks import Dependency, RequiredFile, Smoke, TlsEndpoint, Waiver
from runbook.config.deadlines import Deadlines
from runbook.config.environment import Environment
from runbook.config.governance import Notification
from runbook.config.hosts import Host, Ssh
from runbook.config.monitoring import Monitoring
from runbook.config.load import ENVIRONMENTS, environment_path, load_environment, resolve_secrets
from runbook.config.observation import PrometheusQuerySource, PrometheusTextSource, ProberSource, Watch
from runbook.config.rollout import BalancedServer, Batch, LoadBalancer

__all__ = [
    "ENVIRONMENTS",
    "BalancedServer",
    "Batch",
    "ConfigFile",
    "Deadlines",
    "Dependency",
    "Environment",
    "Host",
    "LoadBalancer",
    "Monitoring",
    "Notification",
    "PrometheusQuerySource",
    "PrometheusTextSource",
    "ProberSource",
    "RequiredFile",
    "Service",
    "Smoke",
    "Ssh",
    "TlsEndpoint",
    "Waiver",
    "Watch",
    "environment_path",
    "load_environment",
    "resolve_secrets",
]
