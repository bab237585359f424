"""widgetd.testing: tools and a conformance kit for plugin authors."""
