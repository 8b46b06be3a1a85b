"""Hypothesis strategies for every revcrm model, valid and invalid.

One public module, so every new model extends it and every test (revcrm's own, other
helpers', a host application's) draws the same realistic data. All strategies are pure
functions returning a :class:`~hypothesis.strategies.SearchStrategy`; keyword options
narrow them. Import them from here; the private modules only group them by topic:
``_money_time`` (scalars and exchange rates), ``_catalogue`` (customers, products, plans,
subscriptions), ``_billing`` (invoices, transactions, credits), ``_books`` (whole books,
segment thresholds), ``_crm`` (leads, referral sources, tags), ``_sync`` (a host's views
of a service) and ``_hostile``.

Valid values:

* :func:`currencies`, :func:`amounts`, :func:`money`, :func:`billing_cycles`,
  :func:`discounts`, :func:`moments`, :func:`dates`, :func:`ids`
* :func:`customers`, :func:`products`, :func:`plans`, :func:`subscriptions`,
  :func:`invoice_lines`, :func:`invoices`, :func:`transactions`, :func:`credit_entries`,
  :func:`fx_rates`, :func:`books`, :func:`service_observations`
* Books busy around segment thresholds and the moments where a rule may flip:
  :func:`busy_books`, :func:`moments_near`, :func:`edges`, :func:`around`
* CRM records: :func:`leads`, :func:`new_leads`, :func:`lead_walks`, :func:`lead_lists`,
  :func:`lead_moments`, :func:`lead_gaps`, :func:`lead_emails`, :func:`lead_money`,
  :func:`referral_sources`, :func:`book_tag_logs`, :func:`tag_change_logs`

Invalid values (each must be rejected by the model that receives it):

* :func:`negative_amounts`, :func:`negative_money`, :func:`non_positive_quantities`,
  :func:`invalid_quantities`, :func:`naive_datetimes`, :func:`float_amounts`,
  :func:`unknown_currency_codes`, :func:`invalid_amount_strings`

Hostile values (a public call must refuse each with a :class:`~revcrm.errors.RevcrmError`
or accept it, never crash):

* :func:`hostile_text`, :func:`wrong_types`, :func:`hostile_text_or_wrong_type`,
  :func:`hostile_numbers`, :func:`hostile_decimals`, :func:`hostile_ints`,
  :func:`hostile_dates`, :func:`hostile_mappings`, :func:`forged_cursors`,
  :func:`hostile_values`

Every moment drawn is an aware UTC datetime between :data:`EARLIEST` and :data:`LATEST`
unless the caller passes other bounds. Books stay small (a few customers, a few changes
per subscription) so properties over them run in milliseconds per example.

Requires hypothesis (the ``test`` extra); importing this module has no other effect.
"""

from __future__ import annotations

from revcrm.testing.strategies._billing import (
    credit_entries,
    invalid_quantities,
    invoice_lines,
    invoices,
    non_positive_quantities,
    transactions,
)
from revcrm.testing.strategies._books import (
    DAYS,
    around,
    books,
    busy_books,
    edges,
    moments_near,
)
from revcrm.testing.strategies._catalogue import customers, plans, products, subscriptions
from revcrm.testing.strategies._crm import (
    LEAD_CURRENCIES,
    LEAD_LOST_REASONS,
    LEAD_STAFF,
    book_tag_logs,
    lead_emails,
    lead_gaps,
    lead_lists,
    lead_moments,
    lead_money,
    lead_walks,
    leads,
    new_leads,
    referral_sources,
    tag_change_logs,
)
from revcrm.testing.strategies._hostile import (
    HOSTILE_CHARACTERS,
    LONG_TEXT_LENGTH,
    forged_cursors,
    hostile_dates,
    hostile_decimals,
    hostile_ints,
    hostile_mappings,
    hostile_numbers,
    hostile_text,
    hostile_text_or_wrong_type,
    hostile_values,
    wrong_types,
)
from revcrm.testing.strategies._money_time import (
    DEFAULT_CURRENCIES,
    EARLIEST,
    LATEST,
    NAMED_CYCLES,
    amounts,
    billing_cycles,
    currencies,
    dates,
    discounts,
    float_amounts,
    fx_rates,
    ids,
    invalid_amount_strings,
    minor_units,
    moments,
    money,
    naive_datetimes,
    negative_amounts,
    negative_money,
    unknown_currency_codes,
)
from revcrm.testing.strategies._sync import service_observations

__all__ = [
    "DAYS",
    "DEFAULT_CURRENCIES",
    "EARLIEST",
    "HOSTILE_CHARACTERS",
    "LATEST",
    "LEAD_CURRENCIES",
    "LEAD_LOST_REASONS",
    "LEAD_STAFF",
    "LONG_TEXT_LENGTH",
    "NAMED_CYCLES",
    "amounts",
    "around",
    "billing_cycles",
    "book_tag_logs",
    "books",
    "busy_books",
    "credit_entries",
    "currencies",
    "customers",
    "dates",
    "discounts",
    "edges",
    "float_amounts",
    "forged_cursors",
    "fx_rates",
    "hostile_dates",
    "hostile_decimals",
    "hostile_ints",
    "hostile_mappings",
    "hostile_numbers",
    "hostile_text",
    "hostile_text_or_wrong_type",
    "hostile_values",
    "ids",
    "invalid_amount_strings",
    "invalid_quantities",
    "invoice_lines",
    "invoices",
    "lead_emails",
    "lead_gaps",
    "lead_lists",
    "lead_moments",
    "lead_money",
    "lead_walks",
    "leads",
    "minor_units",
    "moments",
    "moments_near",
    "money",
    "naive_datetimes",
    "negative_amounts",
    "negative_money",
    "new_leads",
    "non_positive_quantities",
    "plans",
    "products",
    "referral_sources",
    "service_observations",
    "subscriptions",
    "tag_change_logs",
    "transactions",
    "unknown_currency_codes",
    "wrong_types",
]
