"""The worker's side of the bot: the tick (sweep and due digests), outbox delivery and the scheduler."""
