"""The GraphQL API: schema assembly from core and plugin contributions, DataLoaders, context."""
