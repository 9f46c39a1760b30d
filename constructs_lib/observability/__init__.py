"""What we watch: the alarm topic, alarms, dashboard, metric filters, metrics and tracing."""
