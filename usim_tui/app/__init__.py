"""The Textual app: live view of one sweep from its ledger, with keys to launch, destroy and relaunch."""
