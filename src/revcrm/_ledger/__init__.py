"""The columnar MRR ledger: invoice lines as arrays (``_columns.LineColumns``) and the engine over them."""
