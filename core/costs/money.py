"""How an amount of money reads: the one formatter of dollars for people (pages, CLI tables, messages).

One precision rule: cents for an amount of a dollar or more (`$12,000.00`, `$31.50`), and two significant
digits below a dollar, never fewer than two decimals (`$0.42`, `$0.0038`, `$0.0001`, `$0.0000029`), so a call that costs
a thousandth of a cent does not read as `$0.00`. JSON and CSV carry plain decimals instead
(`core.store.models.money_str`).
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

SIGNIFICANT = 2  # digits shown of an amount under a dollar
CENT = Decimal("0.01")


def usd(amount: Decimal | float | int | str | None, *, markdown: bool = False) -> str:
    """`$1,234.50`, `$0.0038`; `markdown=True` escapes the `$` for text Streamlit renders as Markdown (two bare
    `$` would start LaTeX). None reads as `—`."""
    if amount is None:
        return "—"
    value = amount if isinstance(amount, Decimal) else Decimal(str(amount))
    sign = "-" if value < 0 else ""
    value = abs(value)
    if value >= 1 or value == 0:
        text = f"{value.quantize(CENT, ROUND_HALF_UP):,.2f}"
    else:
        places = max(2, SIGNIFICANT - 1 - value.adjusted())
        rounded = value.quantize(Decimal(1).scaleb(-places), ROUND_HALF_UP)
        text = f"{rounded:.2f}" if rounded >= 1 else f"{rounded:.{places}f}"
        while len(text.split(".")[1]) > 2 and text.endswith("0"):  # $0.0001, not $0.00010
            text = text[:-1]
    text = f"{sign}${text}"
    return text.replace("$", "\\$") if markdown else text


def md_usd(amount: Decimal | float | int | str | None) -> str:
    """`usd` for Markdown contexts (captions, alerts, tooltips)."""
    return usd(amount, markdown=True)
