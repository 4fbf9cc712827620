"""Every API family the emulator serves. A family module provides `routes`, `SCOPES`, `default_counts(size)`,
`seed(account)`, `truth(account)` and `mutate(account, action, params)`."""

from . import marketing, suppressions
from . import account, contactdb, templates
from . import activity, stats
from . import engagement, subuser_stats

FAMILIES = {
    "suppressions": suppressions,
    "marketing": marketing,
    "contactdb": contactdb,
    "templates": templates,
    "account": account,
    "subuser_stats": subuser_stats,  # after account: it reads the account's subusers
    "stats": stats,
    "activity": activity,
    "engagement": engagement,
}
