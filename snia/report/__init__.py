"""Stage 5: the report a cosmologist can cite. Every classifier (the shipped CNN, the ensemble a
distilled CNN learnt from, the random forest) side by side on the same test objects, as Markdown
(for GitHub) and as one self-contained HTML file (images embedded: it can be mailed or attached to
a paper's supplement), with the same content:

- first, the answer: one comparison table with bootstrap 68 % intervals (``snia.metrics``), one ROC
  of all classifiers, and the definitions beside them;
- provenance: date, snia version and git commit, command and workflow target, the data sets (objects,
  class mix, input files), which checkpoint(s) each column is, hardware, training wall time, and the
  complete configuration (the rows after the data sets and the configuration collapsed); the same in
  the report folder's metrics.json;
- one section per classifier, drawn here from its folder's predictions.csv (one layout for all):
  ROC and purity/completeness/FoM against the threshold with bootstrap bands, confusion at 0.5 and at
  the best-FoM threshold, P(Ia) per true type, the reliability diagram and Brier score (before and
  after calibration when predictions.csv carries ``p_ia_uncalibrated``); the forest's feature
  importance; the CNN's t-SNE;
- the architectures compared (``snia compare``): size, speed and quality of each, and AUC against
  inference speed;
- the mistakes: light curve and image of the CNN's most confident false positives and negatives
  (needs the evaluated store), and example images per type.

``check_in_browser`` opens the HTML in headless Chromium (Selenium) as a reader would: CI and the
tests check that every image decodes, nothing overflows 1280 px, the headline table is within the
first screen (``opens_with_its_answer``) and provenance and definitions are there, and keep a
screenshot.

The package: ``document`` (Markdown and HTML), ``columns`` (one per classifier, the
comparison table), ``sections`` (provenance, classifiers, mistakes, training), ``browser`` (the
check in headless Chromium); ``write`` (``write_report``) puts them together. This file only names
what the package offers.
"""

from snia.report.browser import SCREENSHOT, check_in_browser, find_chromium, opens_with_its_answer
from snia.report.write import write_report

__all__ = ["SCREENSHOT", "check_in_browser", "find_chromium", "opens_with_its_answer",
           "write_report"]
