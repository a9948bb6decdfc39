"""Platform adapters: each turns platform events into pipeline turns and replies back."""
