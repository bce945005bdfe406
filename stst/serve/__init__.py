"""``stst serve``: a web page and an HTTP API to choose a style by eye, stylize photos and clips, and a live webcam."""
