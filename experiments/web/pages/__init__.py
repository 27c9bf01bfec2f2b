"""The app's pages, in the header's order. A page is a module with ``PAGE = Page(path, title, layout, register)``;
add it here to add it to the app."""

from experiments.web.pages import automation, headcount, runs, scenario, simulate, territories

PAGES = [scenario.PAGE, simulate.PAGE, headcount.PAGE, territories.PAGE, automation.PAGE, runs.PAGE]
