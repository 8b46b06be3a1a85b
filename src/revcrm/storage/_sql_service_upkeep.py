"""Gone: invoice and plan writes rebuild their service rows in ``SQLWrites._write``."""

from revcrm.storage._sql_ledger import SQLLedger

SQLServiceUpkeep = SQLLedger  # delete this module once _sql_segments subclasses SQLLedger
