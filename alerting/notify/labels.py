"""How an alert is named to people: its tenant's name, its dashboard page, a one-line summary."""

from collections.abc import Mapping
from dataclasses import dataclass, field

from alerting.notify.notice import Notice
from voicepulse.messages import ISV_ACCOUNT

__all__ = ["Describer"]


@dataclass(frozen=True, slots=True)
class Describer:
    """Tenant names by AccountSid, and the dashboard's base URL (None: no links)."""

    tenant_names: Mapping[str, str] = field(default_factory=dict)
    dashboard_url: str | None = None

    def tenant(self, notice: Notice) -> str:
        if notice.account_sid == ISV_ACCOUNT:
            return "all subaccounts (ISV)"
        named = notice.fields.get("tenant") or self.tenant_names.get(notice.account_sid)
        return str(named or notice.account_sid)

    def url(self, notice: Notice) -> str | None:
        """The subaccount's dashboard page (the ISV page for the ISV rows)."""
        if self.dashboard_url is None:
            return None
        base = self.dashboard_url.rstrip("/")
        if notice.account_sid == ISV_ACCOUNT:
            return f"{base}/isv"
        return f"{base}/subaccounts/{notice.account_sid}"

    def summary(self, notice: Notice) -> str:
        """The change's own message, else one line built from its fields."""
        if notice.message:
            return notice.message
        where = self.tenant(notice)
        if notice.direction_group:
            where += f", {notice.direction_group}"
        measured = ""
        if notice.value is not None and notice.threshold is not None:
            measured = f": {number(notice.value)} against {number(notice.threshold)}"
        return f"{notice.rule} {notice.state} for {where}{measured}"


def number(value: float) -> str:
    """A measured value for people: four significant digits, no exponent for usual sizes."""
    return f"{value:.4g}"
