"""Who may do what: one authorisation check for every command and button, whatever the transport.

Roles: a *parent* (a family that agreed to store its children's data), an institution *operator*, a
family *doctor*, an *admin* (configured account keys); everyone else is a stranger. A command or
action declares the permission it needs (router.CommandSpec / ActionSpec `permission`), the
conversation checks it before the handler runs, and handlers ask again about the resource — a doctor
acts only on families signed with them (`allowed(actor, "doctor", family_id)`).
"""

from __future__ import annotations

from sqlite_utils.db import Database

from .children import Families
from .doctors import Doctor, Doctors
from .identity import Actor
from .institutions import Directory

PERMISSIONS = ("anyone", "parent", "operator", "doctor", "admin")
ROLES = ("stranger", "parent", "operator", "doctor", "admin")


class Authority:
    def __init__(self, db: Database | None, admins: frozenset[str] = frozenset()) -> None:
        self.admins = admins  # account keys, e.g. telegram:9001 (ZJCARE_ADMIN_IDS)
        self.families = Families(db) if db is not None else None
        self.doctors = Doctors(db) if db is not None else None
        self.directory = Directory(db) if db is not None else None

    def doctor(self, actor: Actor) -> Doctor | None:
        if self.doctors is None or not actor.user_id:
            return None
        return self.doctors.by_user(actor.user_key)

    def roles(self, actor: Actor) -> set[str]:
        out = {"stranger"}
        if not actor.user_id:
            return out
        if actor.user_key in self.admins:
            out.add("admin")
        if self.doctor(actor) is not None:
            out.add("doctor")
        if self.directory is not None and self.directory.operated_by(actor.user_key) is not None:
            out.add("operator")
        family = self.families.get(actor.user_key) if self.families is not None else None
        if family is not None and family.consent_at is not None:
            out.add("parent")
        return out

    def allowed(self, actor: Actor, permission: str, family_id: int | None = None) -> bool:
        """Whether `actor` holds `permission` (one of PERMISSIONS); for "doctor" with a `family_id`,
        also whether that family is signed with them. Unknown permissions are refused."""
        if permission == "anyone":
            return True
        if permission not in PERMISSIONS or not actor.user_id:
            return False
        if permission == "admin":
            return actor.user_key in self.admins
        if permission == "doctor":
            doctor = self.doctor(actor)
            if doctor is None:
                return False
            return family_id is None or (self.doctors is not None and self.doctors.signs(doctor.id, family_id))
        return permission in self.roles(actor)
