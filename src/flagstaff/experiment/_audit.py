"""
The assignment audit: the variant each exposed user should have been served,
recomputed by the batch core, against the variant their exposure recorded.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ._readout import DEFAULT_EXPOSURE_EVENT, _is_table_source, _read_table


@dataclass(frozen=True)
class Disagreement:
    """
    One exposed user whose recorded variant is not the one the config serves.
    """

    user_id: Any
    recorded: str
    expected: str | None


@dataclass(frozen=True)
class AssignmentAudit:
    """
    The result of :func:`audit_assignments`.

    ``checked`` users were exposed and found in the users table;
    ``disagreeing`` of them had at least one recorded variant that the config
    does not serve them, and ``examples`` shows the first few; ``unknown_users``
    were exposed but have no row in the users table, so were not checked.
    """

    key: str
    checked: int
    disagreeing: int
    unknown_users: int
    examples: tuple[Disagreement, ...]

    @property
    def ok(self) -> bool:
        """
        Whether every checked user was recorded with the variant they are served.
        """
        return self.disagreeing == 0

    def format(self) -> str:
        """
        Returns the audit as text: the counts, then the examples.
        """
        lines = [(f"assignment audit of {self.key!r}: {self.checked:,} exposed users "
                 f"checked, {self.disagreeing:,} recorded with a variant the config "
                 "does not serve them")]
        if self.unknown_users:
            lines.append(f"{self.unknown_users:,} exposed users have no attributes "
                         "and were not checked")
        for d in self.examples:
            lines.append(f"  {d.user_id}: recorded {d.recorded!r}, "
                         f"served {d.expected!r}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.format()


def audit_assignments(
    config: Any,
    exposures: str | os.PathLike[str] | Any | Iterable[tuple[Any, str]],
    users: Any,
    key: str,
    *,
    user_column: str = "user_id",
    variant_column: str = "variant",
    event_column: str = "event",
    exposure_event: str = DEFAULT_EXPOSURE_EVENT,
    identifier_column: str = "Identifier",
    examples: int = 10,
) -> AssignmentAudit:
    """
    Recomputes each exposed user's variant and counts the recorded ones that differ.

    The users' attributes go through :func:`flagstaff.batch.evaluate_table`,
    the compiled core that serves the flag, and are joined to the exposures on
    the user id. A disagreement is a logging or assignment bug: the user was
    recorded in a variant the config never serves them.

    :param config: the :class:`flagstaff.Config` that served the experiment.
    :param exposures: a pyarrow Table (or Parquet/CSV path) of events, of
        which the rows named ``exposure_event`` count (all rows when the table
        has no ``event_column``), or an iterable of ``(user_id, variant)``.
    :param users: a pyarrow Table of users: ``identifier_column`` plus one
        column per attribute, as :func:`~flagstaff.batch.evaluate_table` reads.
    :param key: the flag of the experiment.
    :param user_column: the exposure table's user id column.
    :param variant_column: the exposure table's variant column.
    :param event_column: the exposure table's event name column.
    :param exposure_event: the event name of an exposure.
    :param identifier_column: the users table's user id column.
    :param examples: how many disagreements to keep as examples.
    :return: the :class:`AssignmentAudit`.
    :raises ValueError: for a missing column.
    :raises flagstaff.batch.BatchError: for an unknown key or unusable column.
    """
    from flagstaff.batch import evaluate_table

    if _is_table_source(exposures):
        pairs = _exposure_pairs(_read_table(exposures), user_column, variant_column,
                                event_column, exposure_event)
    else:
        pairs = list(exposures)
    if identifier_column not in users.column_names:
        raise ValueError(f"the users table has no column {identifier_column!r}")

    served = evaluate_table(config, users, [key]).column(key).to_pylist()
    expected = dict(zip(users.column(identifier_column).to_pylist(), served))

    seen = set()
    bad = {}
    unknown = set()
    for user, variant in pairs:
        if user not in expected:
            unknown.add(user)
            continue
        seen.add(user)
        if variant != expected[user] and user not in bad:
            bad[user] = Disagreement(user, variant, expected[user])
    return AssignmentAudit(key=key, checked=len(seen), disagreeing=len(bad),
                           unknown_users=len(unknown),
                           examples=tuple(list(bad.values())[:examples]))


def _exposure_pairs(table: Any, user_column: str, variant_column: str,
                    event_column: str, exposure_event: str) -> list:
    import pyarrow.compute as pc

    for column in (user_column, variant_column):
        if column not in table.column_names:
            raise ValueError(f"the exposures table has no column {column!r}")
    if event_column in table.column_names:
        table = table.filter(pc.equal(table.column(event_column), exposure_event))
    return list(zip(table.column(user_column).to_pylist(),
                    table.column(variant_column).to_pylist()))
