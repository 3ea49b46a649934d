"""The channel gateway (`o2o gateway`): platform webhooks in, the retailer's
REST API, and status calls back to the platforms (docs/channels.md)."""
