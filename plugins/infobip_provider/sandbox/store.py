"""Everything the sandbox remembers: lists, People, tags, sent and inbound SMS, plus JSON (de)serialisation.

The store holds plain dicts in the shapes Infobip answers with, and indexes people by external id,
email and phone. It knows nothing about HTTP; the route modules validate requests and call it.
Only the app's event loop touches it, so no lock is needed.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

STATE_FORMAT = "infobip-sandbox-state/1"


def people_time(epoch: float) -> str:
    """People timestamps: ``yyyy-MM-ddTHH:mm:ss``, UTC, no zone."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def sms_time(epoch: float) -> str:
    """SMS timestamps: ``2026-11-23T09:00:00.000+0000``."""
    moment = datetime.fromtimestamp(epoch, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


class SandboxStore:
    """The sandbox's state."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        self.lists: dict[int, dict[str, Any]] = {}
        self.people: dict[int, dict[str, Any]] = {}
        self.tags: dict[str, dict[str, Any]] = {}
        self.messages: list[dict[str, Any]] = []
        #: sent emails (``api_email``) and WhatsApp messages (``api_whatsapp``)
        self.emails: list[dict[str, Any]] = []
        self.whatsapp: list[dict[str, Any]] = []
        #: inbound SMS (replies) a test injected, each handed out once by ``/sms/1/inbox/reports``
        self.inbound: list[dict[str, Any]] = []
        #: destination prefix -> outcome name (``sms.OUTCOMES``) given to SMS sent to such numbers
        self.sms_outcomes: dict[str, str] = {}
        #: address prefix -> outcome name (``api_email.EMAIL_OUTCOMES``) given to emails sent to such addresses
        self.email_outcomes: dict[str, str] = {}
        #: the account's blocklist: (channel, destination, sender); email suppressions: "domain|address|type" -> time
        self.blocklist: set[tuple[str, str, str]] = set()
        self.email_suppressions: dict[str, float] = {}
        self.next_ids = {"list": 1001, "person": 1, "tag": 1}
        self._by_external: dict[str, int] = {}
        self._by_email: dict[str, int] = {}
        self._by_phone: dict[str, int] = {}
        self._keys_of: dict[int, list[tuple[dict[str, int], str]]] = {}

    def new_id(self, kind: str) -> int:
        value = self.next_ids[kind]
        self.next_ids[kind] = value + 1
        return value

    # ---- lists -------------------------------------------------------------------------------
    def create_list(self, name: str, now: float) -> dict[str, Any]:
        list_id = self.new_id("list")
        record = {"listId": list_id, "name": name, "createdAt": people_time(now), "members": set()}
        self.lists[list_id] = record
        return record

    # ---- tags --------------------------------------------------------------------------------
    def ensure_tag(self, name: str, now: float) -> dict[str, Any]:
        tag = self.tags.get(name)
        if tag is None:
            stamp = people_time(now)
            tag = {"id": self.new_id("tag"), "name": name, "createdAt": stamp, "modifiedAt": stamp}
            self.tags[name] = tag
        return tag

    # ---- people ------------------------------------------------------------------------------
    def find_person(self, id_type: str, identifier: str) -> dict[str, Any] | None:
        person_id: int | None
        if id_type == "ID":
            try:
                person_id = int(identifier)
            except ValueError:
                return None
        elif id_type == "EXTERNAL_ID":
            person_id = self._by_external.get(identifier)
        elif id_type == "EMAIL":
            person_id = self._by_email.get(identifier.strip().lower())
        elif id_type == "PHONE":
            person_id = self._by_phone.get(identifier.strip().lstrip("+"))
        else:
            return None
        return None if person_id is None else self.people.get(person_id)

    def owners(self, person: dict[str, Any]) -> set[int]:
        """Ids of stored people that already own one of ``person``'s identifiers."""
        found: set[int] = set()
        if person.get("externalId") is not None and person["externalId"] in self._by_external:
            found.add(self._by_external[person["externalId"]])
        contact = person.get("contactInformation", {})
        for email in contact.get("email", []):
            if email["address"] in self._by_email:
                found.add(self._by_email[email["address"]])
        for phone in contact.get("phone", []):
            if phone["number"] in self._by_phone:
                found.add(self._by_phone[phone["number"]])
        return found

    def put_person(self, person: dict[str, Any]) -> None:
        """Store (or re-store after a change) a person and index its identifiers."""
        self.people[person["id"]] = person
        self._index(person)

    def _index(self, person: dict[str, Any]) -> None:
        person_id = person["id"]
        for index, value in self._keys_of.pop(person_id, []):
            if index.get(value) == person_id:
                del index[value]
        keys: list[tuple[dict[str, int], str]] = []
        if person.get("externalId") is not None:
            keys.append((self._by_external, person["externalId"]))
        contact = person.get("contactInformation", {})
        keys.extend((self._by_email, email["address"]) for email in contact.get("email", []))
        keys.extend((self._by_phone, phone["number"]) for phone in contact.get("phone", []))
        for index, value in keys:
            index[value] = person_id
        self._keys_of[person_id] = keys

    # ---- persistence -------------------------------------------------------------------------
    def dump(self) -> dict[str, Any]:
        lists = [{**record, "members": sorted(record["members"])} for record in self.lists.values()]
        return {
            "format": STATE_FORMAT,
            "next_ids": dict(self.next_ids),
            "lists": lists,
            "tags": list(self.tags.values()),
            "people": list(self.people.values()),
            "messages": list(self.messages),
            "emails": list(self.emails),
            "whatsapp": list(self.whatsapp),
            "inbound": list(self.inbound),
            "sms_outcomes": dict(self.sms_outcomes),
            "email_outcomes": dict(self.email_outcomes),
            "blocklist": [list(item) for item in sorted(self.blocklist)],
            "email_suppressions": dict(self.email_suppressions),
        }

    def load(self, data: dict[str, Any]) -> None:
        if data.get("format") != STATE_FORMAT:
            raise ValueError(f"not a sandbox state file (format {data.get('format')!r})")
        self.clear()
        self.next_ids.update({k: int(v) for k, v in data.get("next_ids", {}).items()})
        for record in data.get("lists", []):
            self.lists[int(record["listId"])] = {**record, "members": set(record.get("members", []))}
        for tag in data.get("tags", []):
            self.tags[tag["name"]] = tag
        for person in data.get("people", []):
            self.put_person(person)
        # "status"/"error" are computed on the way out (see SandboxCore.dump); never trust stale ones.
        self.messages = [
            {k: v for k, v in m.items() if k not in ("status", "error")} for m in data.get("messages", [])
        ]
        self.inbound = list(data.get("inbound", []))
        self.emails = list(data.get("emails", []))
        self.whatsapp = list(data.get("whatsapp", []))
        self.sms_outcomes = dict(data.get("sms_outcomes", {}))
        self.email_outcomes = dict(data.get("email_outcomes", {}))
        self.blocklist = {(str(c), str(t), str(s)) for c, t, s in data.get("blocklist", [])}
        self.email_suppressions = dict(data.get("email_suppressions", {}))

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state atomically (temporary file in the same folder, fsync, rename)."""
        write_atomic(Path(path), json.dumps(self.dump(), ensure_ascii=False, separators=(",", ":")))

    def load_file(self, path: str | os.PathLike[str]) -> bool:
        """Load ``path`` if it exists; ``False`` when there was nothing to load."""
        target = Path(path)
        if not target.exists() or target.stat().st_size == 0:
            return False
        self.load(json.loads(target.read_text(encoding="utf-8")))
        return True


def write_atomic(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
