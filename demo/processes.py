"""The demo service's own memory and CPU, for `/metrics`: under gunicorn its master and every worker."""

import os
import sys

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _proc_stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command name (field 3, the state, first)."""
    with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
        return stat.read().rsplit(")", 1)[1].split()


class ServiceProcesses:
    """The memory and CPU of the whole service: under gunicorn its master (this worker's parent) and every
    worker, together; otherwise this process. CPU counts the master's reaped children too, so it never
    goes back when a worker is replaced."""

    def collect(self):
        root = os.getppid() if "gunicorn" in sys.modules else os.getpid()
        stat = _proc_stat(root)
        rss, cpu = int(stat[21]), sum(int(v) for v in stat[11:15])
        for entry in os.listdir("/proc"):
            try:
                child = _proc_stat(int(entry)) if entry.isdigit() else None
            except OSError:
                continue  # the process ended while being read
            if child and int(child[1]) == root:
                rss, cpu = rss + int(child[21]), cpu + int(child[11]) + int(child[12])
        yield GaugeMetricFamily("demo_service_resident_memory_bytes", "Resident memory of the service's processes",
                                value=rss * PAGE_SIZE)
        yield CounterMetricFamily("demo_service_cpu_seconds", "CPU time of the service's processes",
                                  value=cpu / CLOCK_TICKS)
