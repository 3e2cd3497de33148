"""Respect the recipient: quiet hours in the member's local time, a frequency cap per person and
channel, and the account's suppression list. Every broadcast applies them through the broadcast
engine (:mod:`infobip_provider.engines.broadcast`).

- :mod:`~infobip_provider.respect.quiet_hours`: a member's time zone (a ``timezone`` column, the
  phone number's prefix, a default) and, per zone, the Infobip delivery window in UTC (pure).
- :mod:`~infobip_provider.respect.frequency`: who already got ``count`` messages of this library's
  broadcasts on a channel within ``hours``, read from the broadcasts' ledgers.
- :mod:`~infobip_provider.respect.suppression`: the suppression list of an account in the state
  store, fed by opt-out replies, permanent failures and hard or spam bounces, and the user's files.
"""
