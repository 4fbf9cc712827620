"""The registry of streams, in the order of the README's stream table."""

from .suppressions import (
    Blocks,
    Bounces,
    GlobalSuppressions,
    InvalidEmails,
    SpamReports,
    SuppressionGroupMembers,
    SuppressionGroups,
)

ALL_STREAMS = [
    Bounces,
    Blocks,
    SpamReports,
    InvalidEmails,
    GlobalSuppressions,
    SuppressionGroups,
    SuppressionGroupMembers,
]
