"""widgetd core tests."""
