"""Every API family the emulator serves. A family module provides `routes`, `SCOPES`, `default_counts(size)`,
`seed(account)`, `truth(account)` and `mutate(account, action, params)`."""

from . import suppressions

FAMILIES = {
    "suppressions": suppressions,
}
