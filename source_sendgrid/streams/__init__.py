"""The registry of streams, in the order of the README's stream table."""

from .account import LegacySenders, Subusers, VerifiedSenders
from .activity import EmailActivity
from .contactdb import (
    LegacyCampaigns,
    LegacyContacts,
    LegacyCustomFields,
    LegacyListMembers,
    LegacyLists,
    LegacyReservedFields,
    LegacySegmentMembers,
    LegacySegments,
)
from .contacts_export import Contacts
from .marketing import (
    AutomationLinkStats,
    Campaigns,
    FieldDefinitions,
    Lists,
    MarketingSenders,
    Segments,
    SinglesendLinkStats,
    SinglesendStats,
    Singlesends,
    StatsAutomations,
)
from .memberships import ListMembers, SegmentMembers
from .suppressions import (
    Blocks,
    Bounces,
    GlobalSuppressions,
    InvalidEmails,
    SpamReports,
    SuppressionGroupMembers,
    SuppressionGroups,
)
from .stats import (
    BrowserStats,
    Categories,
    CategoryStats,
    ClientStats,
    DeviceStats,
    GeoStats,
    GlobalStats,
    MailboxProviderStats,
)
from .subuser_stats import SubuserMonthlyStats, SubuserReputations, SubuserStats
from .templates import Templates, TemplateVersions

ALL_STREAMS = [
    Bounces,
    Blocks,
    SpamReports,
    InvalidEmails,
    GlobalSuppressions,
    SuppressionGroups,
    SuppressionGroupMembers,
    Contacts,
    Lists,
    ListMembers,
    Segments,
    SegmentMembers,
    Singlesends,
    Campaigns,
    SinglesendStats,
    StatsAutomations,
    FieldDefinitions,
    MarketingSenders,
    LegacyContacts,
    LegacyLists,
    LegacyListMembers,
    LegacySegments,
    LegacySegmentMembers,
    LegacyCustomFields,
    LegacyReservedFields,
    LegacyCampaigns,
    Templates,
    TemplateVersions,
    VerifiedSenders,
    LegacySenders,
    Subusers,
    SinglesendLinkStats,
    AutomationLinkStats,
    SubuserStats,
    SubuserMonthlyStats,
    SubuserReputations,
    GlobalStats,
    Categories,
    CategoryStats,
    MailboxProviderStats,
    BrowserStats,
    DeviceStats,
    ClientStats,
    GeoStats,
    EmailActivity,
]
