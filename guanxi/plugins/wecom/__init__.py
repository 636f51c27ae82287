"""WeCom (企业微信) customer-contact channel: callbacks, server API client, channel adapter."""
