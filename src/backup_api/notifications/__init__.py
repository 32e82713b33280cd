"""Notifications: the channels' sending (Standard Webhooks, apprise), the deliveries'
persisted retries, and the schedules' heartbeats."""
