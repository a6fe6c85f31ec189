"""Which state directory owns a cluster's nodes: a random instance id, kept in state.json and stamped on
everything `up` makes (labels on containers, services, volumes and networks; a marker file in each node's
data). Two state directories holding the same cluster name (a second clone, another `--state-dir`, another
operator) then never adopt, recreate or delete each other's nodes: whatever carries another id is refused
(exit 13), naming the state directory that owns it. `up --adopt` takes such nodes over deliberately.

Nodes made before instance ids carry none. A state that has secrets but no id yet made them (an older
streamctl wrote it): its next `up` takes them over once and labels them. A state without secrets (a fresh
one) refuses them: it cannot have made them, and new passwords would lock their data away.
"""

from __future__ import annotations

import json
import secrets as _secrets
import threading
from dataclasses import dataclass, field
from pathlib import PurePath
from typing import TYPE_CHECKING

from streamctl.errors import ForeignError

if TYPE_CHECKING:
    from streamctl.state import StateStore

LABEL_INSTANCE = "io.streamctl.instance"
LABEL_STATE_DIR = "io.streamctl.state-dir"  # where the owner's state is, for the refusal's message
MARKER = ".streamctl-instance"  # in a node's data (volume root, local node directory): the same two facts


@dataclass
class Ownership:
    """This state directory's instance id and what it may take over (`takeover` None: anything, --adopt)."""

    instance: str
    state_dir: str
    stored: bool  # the id is in state.json already (else `up` records it before it changes anything)
    takeover: frozenset[str | None] | None = frozenset()
    adopted: frozenset[str | None] = frozenset()  # ids taken over earlier: their leftovers are ours
    found: set[str | None] = field(default_factory=set)  # ids met that `up` is taking over now
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def labels(self) -> dict[str, str]:
        return {LABEL_INSTANCE: self.instance, LABEL_STATE_DIR: self.state_dir}

    def marker(self) -> str:
        return json.dumps({"instance": self.instance, "state_dir": self.state_dir}) + "\n"

    def check(self, what: str, found: str | None, owner_dir: str | None = None) -> bool:
        """True: `what` is ours. False: it is to be taken over (relabelled by `up`, or removed by `down`).
        Raises ForeignError when it belongs to another state directory."""
        if found is not None and found == self.instance:
            return True
        if self.takeover is None or found in self.takeover:
            with self._lock:
                self.found.add(found)
            return False
        if found in self.adopted:  # a leftover of a takeover finished earlier (e.g. a volume's label)
            return True
        raise self.refusal(what, found, owner_dir)

    def mine(self, found: str | None) -> bool:
        """A cluster-wide leftover (template volume, network) is ours: our id, or one we took over."""
        return (found is not None and found == self.instance) or found in self.adopted or (
            self.takeover is not None and found in self.takeover)

    def refusal(self, what: str, found: str | None, owner_dir: str | None) -> ForeignError:
        mine = f"this state directory ({self.state_dir}) is instance {self.instance}" if self.stored else (
            f"this state directory ({self.state_dir}) has not made any node yet")
        if found is None:
            owner = ("it has no instance id: it was made by a streamctl older than instance ids, from another "
                     "state directory (this one has no secrets for it)")
        else:
            owner = f"it belongs to instance {found} of the state directory {owner_dir or '(unknown)'}"
        use = f"--state-dir {PurePath(owner_dir).parent}" if owner_dir else "--state-dir"
        return ForeignError(
            f"refused: {what} is not this state directory's: {owner}; {mine}. Nothing was changed",
            hint=f"run streamctl with the owner's state directory ({use}), or give this cluster another "
                 f"name; to take it over deliberately (data kept), copy the owner's secrets.json into "
                 f"{self.state_dir} and run `streamctl up --adopt`")


def parse_marker(text: str) -> tuple[str | None, str | None]:
    """(instance, state_dir) from a marker file's text; (None, None) when it is not one."""
    try:
        data = json.loads(text)
        return data.get("instance"), data.get("state_dir")
    except (ValueError, AttributeError):
        return None, None


def load(store: StateStore, adopt: bool = False) -> Ownership:
    data = store.read()
    instance = data.get("instance_id")
    adopted = frozenset(data.get("adopted", []))
    if instance:
        takeover: frozenset[str | None] | None = frozenset(data.get("adopting", []))
    else:
        instance = _secrets.token_hex(8)
        # An older streamctl's state (secrets, no id) made the unlabelled nodes; a fresh one made none.
        takeover = frozenset({None}) if store.secrets_file.exists() else frozenset()
    return Ownership(str(instance), str(store.root), bool(data.get("instance_id")),
                     None if adopt else takeover, adopted)


def record(store: StateStore, own: Ownership) -> None:
    """Before `up` changes anything: its id, and the ids it is taking over (until `finish`: an interrupted
    takeover is finished by the next `up`, without --adopt)."""
    data = store.read()
    taking = sorted(own.found - {own.instance}, key=str)
    adopting = sorted(set(data.get("adopting", [])) | set(taking), key=str)
    adopted = sorted(set(data.get("adopted", [])) | set(taking), key=str)
    store.update(instance_id=own.instance, **({"adopting": adopting, "adopted": adopted} if taking else {}))
    own.stored, own.adopted = True, frozenset(adopted)


def finish(store: StateStore) -> None:
    """Every node is relabelled: nothing is being taken over any more."""
    data = store.read()
    if "adopting" in data:
        del data["adopting"]
        store.write(data)
