"""Mail that talks back: mailto unsubscribes, ARF complaints, DSN bounces."""
