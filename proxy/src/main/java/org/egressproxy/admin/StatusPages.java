package org.egressproxy.admin;

import java.util.List;
import java.util.Map;
import org.egressproxy.log.Json;
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.Rule;
import org.egressproxy.policy.Sources;

/** {@code /policy} as JSON and {@code /} as a small HTML page, from a {@link Status}. */
final class StatusPages {
  private StatusPages() {}

  static String policyJson(Status status) {
    CompiledPolicy p = status.policy();
    StringBuilder sb = new StringBuilder(1024);
    sb.append("{\"version\":").append(p.generation())
        .append(",\"mode\":").append(Json.quote(p.mode().name().toLowerCase()))
        .append(",\"loadedAt\":").append(Json.quote(p.loadedAt().toString()))
        .append(",\"rules\":").append(p.ruleCount())
        .append(",\"variables\":{");
    boolean first = true;
    for (Map.Entry<String, String> v : p.variables().entrySet()) {
      sb.append(first ? "" : ",").append(Json.quote(v.getKey())).append(':')
          .append(Json.quote(v.getValue()));
      first = false;
    }
    sb.append("},\"catalogs\":[");
    first = true;
    for (CompiledPolicy.CatalogUse u : p.catalogs()) {
      sb.append(first ? "" : ",").append("{\"name\":").append(Json.quote(u.catalog().name()))
          .append(",\"origin\":").append(Json.quote(u.catalog().origin()))
          .append(",\"rules\":").append(u.activeRules())
          .append(",\"disabled\":").append(list(u.disabledRules())).append('}');
      first = false;
    }
    sb.append("],\"localRules\":[");
    first = true;
    for (Rule r : p.localRules()) {
      sb.append(first ? "" : ",").append("{\"action\":").append(r.isDeny() ? "\"deny\"" : "\"allow\"")
          .append(",\"rule\":").append(Json.quote(r.pattern()))
          .append(",\"ports\":").append(Json.quote(r.ports().toString()))
          .append(",\"protocol\":").append(Json.quote(r.protocolText())).append('}');
      first = false;
    }
    sb.append("],\"sources\":[");
    first = true;
    for (Sources.Source s : status.sources().list()) {
      sb.append(first ? "" : ",").append("{\"name\":").append(Json.quote(s.name()))
          .append(",\"version\":").append(s.policy().generation())
          .append(",\"rules\":").append(s.policy().ruleCount())
          .append(",\"catalogs\":").append(list(s.policy().catalogs().stream()
              .map(u -> u.catalog().name()).toList())).append('}');
      first = false;
    }
    sb.append("],\"lastReload\":");
    Status.Reload r = status.lastReload();
    if (r == null) {
      sb.append("null");
    } else {
      sb.append("{\"at\":").append(Json.quote(r.at().toString()))
          .append(",\"trigger\":").append(Json.quote(r.trigger()))
          .append(",\"result\":").append(r.ok() ? "\"ok\"" : "\"error\"")
          .append(",\"errors\":").append(list(r.errors()))
          .append(",\"warnings\":").append(list(r.warnings())).append('}');
    }
    return sb.append("}\n").toString();
  }

  private static String list(List<String> items) {
    StringBuilder sb = new StringBuilder("[");
    for (int i = 0; i < items.size(); i++) {
      sb.append(i > 0 ? "," : "").append(Json.quote(items.get(i)));
    }
    return sb.append(']').toString();
  }

  static String html(Status status) {
    CompiledPolicy p = status.policy();
    StringBuilder sb = new StringBuilder(4096);
    sb.append("<!doctype html><html><head><meta charset=\"utf-8\"><title>egress-proxy</title>"
        + "<style>body{font-family:sans-serif;margin:2em}td,th{padding:2px 12px;text-align:left}"
        + ".err{color:#b00}</style></head><body><h1>egress-proxy</h1>");
    sb.append("<p>").append(status.ready() ? "Ready." : "<b class=\"err\">Not ready.</b>")
        .append(" Policy version ").append(p.generation()).append(" (")
        .append(p.mode().name().toLowerCase()).append("), loaded ").append(esc(p.loadedAt()
            .toString())).append(", ").append(p.ruleCount()).append(" rules.</p>");
    Status.Reload r = status.lastReload();
    sb.append("<h2>Last reload</h2>");
    if (r == null) {
      sb.append("<p>None since start.</p>");
    } else {
      sb.append("<p>").append(esc(r.at().toString())).append(" (").append(esc(r.trigger()))
          .append("): ").append(r.ok() ? "ok" : "<b class=\"err\">failed; the previous policy"
              + " is still serving</b>").append("</p>");
      if (!r.errors().isEmpty()) {
        sb.append("<pre class=\"err\">");
        r.errors().forEach(e -> sb.append(esc(e)).append('\n'));
        sb.append("</pre>");
      }
      if (!r.warnings().isEmpty()) {
        sb.append("<p>Warnings:</p><pre>");
        r.warnings().forEach(w -> sb.append(esc(w)).append('\n'));
        sb.append("</pre>");
      }
    }
    sb.append("<h2>Open connections</h2><table><tr><th>listener</th><th>open</th></tr>");
    status.active().forEach((l, n) -> sb.append("<tr><td>").append(esc(l)).append("</td><td>")
        .append(n).append("</td></tr>"));
    sb.append("</table><h2>Most denied destinations</h2>"
        + "<p>The busiest of up to 1,000 kept; a count runs from when its destination got in.</p>"
        + "<table><tr><th>destination</th><th>denials</th></tr>");
    for (Map.Entry<String, Long> e : status.topDenied(25)) {
      sb.append("<tr><td>").append(esc(e.getKey())).append("</td><td>").append(e.getValue())
          .append("</td></tr>");
    }
    sb.append("</table><h2>Catalogs</h2><table><tr><th>catalog</th><th>active rules</th>"
        + "<th>disabled (variable not set)</th></tr>");
    for (CompiledPolicy.CatalogUse u : p.catalogs()) {
      sb.append("<tr><td>").append(esc(u.catalog().name())).append("</td><td>")
          .append(u.activeRules()).append("</td><td>").append(esc(String.join(", ",
              u.disabledRules()))).append("</td></tr>");
    }
    if (status.sources().configured()) {
      sb.append("</table><h2>Sources</h2><table><tr><th>source</th><th>rules</th>"
          + "<th>catalogs</th></tr>");
      for (Sources.Source s : status.sources().list()) {
        sb.append("<tr><td>").append(esc(s.name())).append("</td><td>")
            .append(s.policy().ruleCount()).append("</td><td>").append(esc(String.join(", ",
                s.policy().catalogs().stream().map(u -> u.catalog().name()).toList())))
            .append("</td></tr>");
      }
    }
    sb.append("</table><p><a href=\"/metrics\">/metrics</a> · <a href=\"/policy\">/policy</a> ·"
        + " /check?host=H&amp;port=P</p></body></html>\n");
    return sb.toString();
  }

  static String esc(String s) {
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        .replace("\"", "&quot;");
  }
}
