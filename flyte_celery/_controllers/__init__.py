"""Controllers: how a run's actions are executed. One protocol, one implementation per mode."""
