"""Transfers out of Infobip: People, delivery reports and replies into a warehouse or files."""
