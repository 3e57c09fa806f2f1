"""Section billing: audit rules and the vectorized rating kernel."""

from gridfare.billing.audit import RULES, AuditRules
from gridfare.billing.kernel import SectionBills, bill_section

__all__ = ["RULES", "AuditRules", "SectionBills", "bill_section"]
