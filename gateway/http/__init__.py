"""The HTTP edge: the app and its lifespan, routes (thin: they parse HTTP and call the pipeline or a
store), middleware, error handlers, responses and the dashboard's files."""
