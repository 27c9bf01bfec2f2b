"""The web app: the command line's scenario, simulation, headcount, territory and run pages in a browser.

It calls the same functions as the ``salesops`` commands; a page holds no model logic.
"""
