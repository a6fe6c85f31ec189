"""Where HA members and etcd members live on Swarm: each group's members on distinct hosts (a host lost takes
one member of a group, never two), etcd's members on distinct hosts too; pure, decided before any change.

Members already pinned stay where their volume is; the others take the hosts of the group's placement that
no member of the group holds, the least loaded first. Too few hosts is an error naming the group, how many
hosts it needs and which ones qualify."""

from __future__ import annotations

from collections import Counter

from streamctl.config import constraints as cons
from streamctl.config.members import EtcdMember, Group

Rules = dict[str, tuple[cons.Constraint, ...]]


def place_members(groups: list[Group], etcd: list[EtcdMember], hosts: list[cons.HostFacts],
                  pinned: dict[str, str], rules: Rules) -> tuple[dict[str, str], list[str]]:
    """(name -> host id for every member and etcd member not pinned yet, problems). `hosts`: the ready, active
    ones; `pinned`: name -> host id of what is placed already; `rules`: group node -> its constraints."""
    load: Counter[str] = Counter(pinned.values())
    chosen: dict[str, str] = {}
    problems: list[str] = []
    ids = {h.id for h in hosts}

    def pick(names: list[str], fit: list[cons.HostFacts], what: str) -> None:
        taken = {pinned[n] for n in names if n in pinned}
        free = [h for h in fit if h.id not in taken]
        todo = [n for n in names if n not in pinned]
        usable = len({*taken} & ids) + len(free)
        if len(free) < len(todo):
            seen = ", ".join(sorted(h.hostname for h in fit)) or "none"
            problems.append(f"{what} has {len(names)} members, which need {len(names)} distinct Swarm hosts, and "
                            f"{usable} ready, active host{'s' if usable != 1 else ''} "
                            f"{'qualify' if usable != 1 else 'qualifies'} ({seen})")
            return
        for name in todo:
            host = min(free, key=lambda h: (load[h.id], h.hostname, h.id))
            free.remove(host)
            chosen[name] = host.id
            load[host.id] += 1

    for g in groups:
        fit = [h for h in hosts if cons.matches(h, rules.get(g.node.name, ()))]
        pick([m.name for m in g.members], fit, f"{g.node.name}'s group ({g.standbys_path}: {g.standbys})")
    if etcd:
        pick([e.name for e in etcd], hosts, f"etcd (ha.etcd.members: {len(etcd)})")
    return chosen, problems
