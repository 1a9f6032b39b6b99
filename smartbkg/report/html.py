"""The self-contained HTML page of an evaluation report: inline style, figures embedded as
base64 PNG, a summary table at the top; readable offline, no script, nothing fetched."""

import base64
import html
import re

from ..data.event_variables import DESCRIPTIONS
from .figures import FIGURE_CAPTIONS, METHOD_STYLE

_STYLE = """
body { font-family: sans-serif; margin: 1.5em auto; max-width: 1300px; color: #222; }
table { border-collapse: collapse; margin: 0.6em 0 1.2em; font-size: 0.92em; }
th, td { border: 1px solid #bbb; padding: 0.25em 0.6em; text-align: right; }
th { background: #eee; } td.name, th.name { text-align: left; }
td.closes { color: #1a7f37; font-weight: bold; } td.biased { color: #b42318; font-weight: bold; }
td.fail { background: #fde2e1; }
figure { display: inline-block; margin: 0.4em; vertical-align: top; }
figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; }
"""


def summary_rows(report):
    """One row per (skim, method) of the summary table: the values the CLI prints too."""
    rows = []
    for skim, result in report["results"].items():
        for method, values in result["methods"].items():
            worst = values["worst_closure"]
            oracle = values.get("fraction_of_oracle")
            rows.append({
                "skim": skim, "method": METHOD_STYLE[method][0], "speedup": values["speedup"],
                "fraction_of_perfect": values["fraction_of_perfect"],
                "fraction_of_oracle": None if oracle is None else oracle["value"],
                "n_eff_per_kept": values["n_eff_per_kept"], "kept_fraction": values["kept_fraction"],
                "worst_chi2_ndf": worst["chi2_ndf"], "worst_variable": worst["variable"], "verdict": values["verdict"],
            })
    return rows


def render(report, images):
    """The HTML text of ``report`` (the report.json content) with ``images`` {skim: {name: PNG bytes}}."""
    parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>smartbkg evaluation</title>"
             f"<style>{_STYLE}</style></head><body>",
             "<h1>smartbkg evaluation report</h1>",
             f"<p>Run <code>{_e(report['run'])}</code> ({_e(report['model'])}), evaluated on "
             f"{report['events']['evaluated']} events of <code>{_e(', '.join(report['data']))}</code>"
             f" ({report['events']['invalid']} invalid events skipped by the readers, "
             f"{report['events']['dropped_empty']} left without particles by the preprocessing). "
             f"Timings per event [ms]: {_e(_timings(report['timings']))}.</p>",
             "<h2>Summary</h2>", _summary_table(report)]
    for skim, result in report["results"].items():
        parts += [f"<h2 id='{_e(skim)}'>Skim {_e(skim)}</h2>", _facts(result), _closure_table(result, report)]
        for name, png in images[skim].items():
            data = base64.b64encode(png).decode("ascii")
            parts.append(f"<figure><img alt='{_e(skim)} {_e(name)}' src='data:image/png;base64,{data}'>"
                         f"<figcaption>{_e(report['figures'][skim][name])}: {_e(FIGURE_CAPTIONS[name])}"
                         "</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts)


#: Plain-text forms of the matplotlib mathtext in variable descriptions.
_MATHTEXT = {"\\theta": "\u03b8", "^2": "\u00b2"}


def _label(description):
    """A variable description in plain text: its mathtext (theta, squares) as Unicode characters."""
    return re.sub(r"\$([^$]*)\$", lambda m: _MATHTEXT.get(m.group(1), m.group(1)), description)


def _e(text):
    return html.escape(str(text), quote=True)


def _timings(t):
    return ", ".join(f"{k} {v:g}" for k, v in t.items())


def _number(value, digits=3):
    return "&ndash;" if value is None else f"{value:.{digits}g}"


def _summary_table(report):
    head = ("<tr><th class='name'>skim</th><th class='name'>method</th><th>speedup</th><th>of perfect</th>"
            "<th>of oracle</th><th>N<sub>eff</sub> per kept event</th><th>kept fraction</th>"
            "<th>worst &chi;<sup>2</sup>/ndf</th><th class='name'>verdict</th></tr>")
    rows = [f"<tr><td class='name'>{_e(r['skim'])}</td><td class='name'>{_e(r['method'])}</td>"
            f"<td>{_number(r['speedup'])}</td><td>{_number(r['fraction_of_perfect'])}</td>"
            f"<td>{_number(r['fraction_of_oracle'])}</td><td>{_number(r['n_eff_per_kept'])}</td>"
            f"<td>{_number(r['kept_fraction'])}</td><td>{_number(r['worst_chi2_ndf'])} ({_e(r['worst_variable'])})</td>"
            f"<td class='{r['verdict']}'>{_e(r['verdict'])}</td></tr>" for r in summary_rows(report)]
    return f"<table>{head}{''.join(rows)}</table>"


def _facts(result):
    auc, limits = result["auc"], result["limits"]
    items = [("AUC", f"{auc['value']:.4f} &plusmn; {auc['error']:.4f} (Hanley-McNeil)"),
             ("retention eps (run) / pass fraction (data)",
              f"{result['eps']:.4g} / {result['events']['pass_fraction']:.4g}"),
             ("events / passing", f"{result['events']['total']} / {result['events']['passing']}"),
             ("perfect-classifier limit",
              f"{limits['perfect']:.3f} (with the p floor: {limits['perfect_floored']:.3f})"),
             ("calibration", _e(f"{result['calibration']['form']} {result['calibration']['params']}, "
                                f"max weight {result['calibration']['max_weight']:g}"))]
    if limits["oracle"] is not None:
        o = limits["oracle"]
        items.append(("oracle (Bayes) limit", f"{o['speedup']:.3f} &plusmn; {o['speedup_err']:.3f}"))
    if "threshold" in result:
        t = result["threshold"]
        target = "highest speedup before reweighting" if t["target_fnr"] is None else f"target FNR {t['target_fnr']:g}"
        items.append(("threshold", f"logit {t['value']:.4g} ({target}); second classifier on "
                                   f"{_e(', '.join(t['seen']))}; {t['folds']} folds"))
    rows = "".join(f"<tr><td class='name'>{k}</td><td class='name'>{v}</td></tr>" for k, v in items)
    return f"<table>{rows}</table>"


def _closure_table(result, report):
    methods = list(result["methods"])
    seen = set(result.get("threshold", {}).get("seen", ()))
    head = "<tr><th class='name'>variable</th><th class='name'>second classifier</th>" + "".join(
        f"<th>{_e(METHOD_STYLE[m][0])}<br>&chi;<sup>2</sup>/ndf (p-value)</th>" for m in methods) + "</tr>"
    rows = []
    for name in report["options"]["variables"]:
        cells = []
        for m in methods:
            c = result["methods"][m]["closure"][name]
            fail = " class='fail'" if name in result["methods"][m]["failing_variables"] else ""
            cells.append(f"<td{fail}>{c['chi2_ndf']:.2f} ({c['p_value']:.2g})</td>")
        rows.append(f"<tr><td class='name'>{_e(_label(DESCRIPTIONS[name]))}</td><td class='name'>"
                    f"{'saw' if name in seen else 'did not see'}</td>{''.join(cells)}</tr>")
    return (f"<p>Closure: weighted kept passing events against all passing events; red: p-value below "
            f"{report['options']['alpha']:g} / {len(report['options']['variables'])} (Bonferroni).</p>"
            f"<table>{head}{''.join(rows)}</table>")
