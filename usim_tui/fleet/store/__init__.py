"""The store: what the fleet knows. The SQLite ledger (the single source of truth) and its typed rows, the state
vocabulary, the views the app and the report render, the controller's journal, what a trainer's events change
(ingest) and the money arithmetic over the rows (budget). The command table the queue accepts (commands).

Imports nothing of the fleet but itself (and usim_core's configs and eval schema)."""
