package org.egressproxy.match;

import java.net.IDN;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A compiled host-name pattern.
 *
 * <ul>
 *   <li>{@code example.com} matches only {@code example.com};
 *   <li>{@code *.example.com} (a leading {@code *} label) matches one or more labels before
 *       {@code example.com}, never {@code example.com} itself;
 *   <li>a {@code *} label anywhere else matches exactly one label;
 *   <li>{@code {var}} is replaced from the variables; a variable whose value is {@code *} stands
 *       for exactly one label, wherever it is.
 * </ul>
 *
 * Labels are stored right to left ({@code com}, {@code example}, ...), {@link #ANY_LABEL} marking a
 * single-label wildcard.
 */
public final class NamePattern {
  /** Marker for a label position that matches any one label. Never a literal label. */
  public static final String ANY_LABEL = "*";

  private final String text;
  private final String[] reversedLabels;
  private final boolean leadingWildcard;

  private NamePattern(String text, String[] reversedLabels, boolean leadingWildcard) {
    this.text = text;
    this.reversedLabels = reversedLabels;
    this.leadingWildcard = leadingWildcard;
  }

  /**
   * The pattern with variables filled in, lower case, ASCII: what a decision names. A variable
   * whose value is {@code *} is shown as {@code {name}}, since a leading {@code *} would read as
   * "one or more labels".
   */
  public String text() {
    return text;
  }

  String[] reversedLabels() {
    return reversedLabels;
  }

  boolean leadingWildcard() {
    return leadingWildcard;
  }

  @Override
  public String toString() {
    return text;
  }

  /** Parses a pattern with no variables. */
  public static NamePattern parse(String pattern) throws PatternException {
    return parse(pattern, Map.of());
  }

  /**
   * Parses {@code pattern}, filling {@code {var}} from {@code variables}.
   *
   * @throws PatternException with a message that says what to write instead; {@link
   *     PatternException#unsetVariable()} is set when a variable has no value
   */
  public static NamePattern parse(String pattern, Map<String, String> variables)
      throws PatternException {
    if (pattern == null || pattern.isBlank()) {
      throw new PatternException("empty host pattern");
    }
    String p = pattern.strip();
    if (!p.equals(pattern)) {
      throw new PatternException("host pattern '" + pattern + "' has surrounding spaces");
    }
    if (p.endsWith(".") && p.length() > 1) {
      p = p.substring(0, p.length() - 1);
    }
    if (p.contains("://") || p.contains("/") || p.contains(":")) {
      throw new PatternException(
          "'" + pattern + "' is not a host pattern: write only the name, e.g. 'example.com',"
              + " with the port under ports:");
    }
    List<String> labels = new ArrayList<>(8); // left to right; ANY_LABEL marks '*'
    List<String> display = new ArrayList<>(8); // what a decision shows, per label
    boolean verbatim = p == pattern; // the text is the input itself: nothing folded or filled in
    boolean leading = false;
    int i = 0;
    for (int from = 0; from <= p.length(); i++) {
      int dot = p.indexOf('.', from);
      int to = dot < 0 ? p.length() : dot;
      String label = p.substring(from, to);
      from = to + 1;
      if (label.isEmpty()) {
        throw new PatternException(
            "'" + pattern + "' has an empty label (two dots in a row, or a leading dot);"
                + (i == 0 ? " for subdomains write '*" + p + "'" : " remove the extra dot"));
      }
      if (label.equals("*")) {
        if (i == 0) {
          leading = true;
        } else {
          labels.add(ANY_LABEL);
          display.add("*");
        }
        continue;
      }
      if (label.indexOf('{') >= 0 || label.indexOf('}') >= 0) {
        verbatim = false;
        int before = labels.size();
        expandVariables(pattern, label, variables, labels);
        if (labels.size() == before + 1 && labels.get(before) == ANY_LABEL) {
          display.add(label); // {location} = '*': show the variable, not a misleading leading '*'
        } else {
          display.addAll(labels.subList(before, labels.size()));
        }
        continue;
      }
      if (label.indexOf('*') >= 0) {
        throw new PatternException(starAdvice(pattern, p, i));
      }
      String literal = literalLabel(pattern, label);
      verbatim &= literal == label;
      labels.add(literal);
      display.add(literal);
    }
    boolean anyLiteral = false;
    int length = leading ? 2 : 0;
    for (String l : labels) {
      if (l != ANY_LABEL) {
        anyLiteral = true;
      }
      length += l.length() + 1;
    }
    if (!anyLiteral) {
      throw new PatternException(
          "'" + pattern + "' matches every name: name at least one domain, e.g. '*.example.com'");
    }
    if (length - 1 > HostName.MAX_NAME) {
      throw new PatternException(
          "'" + pattern + "' is longer than " + HostName.MAX_NAME + " characters");
    }
    String last = labels.get(labels.size() - 1);
    if (last != ANY_LABEL && isDigits(last)) {
      throw new PatternException(
          "'" + pattern + "' looks like an IP address, not a name: write it as a CIDR, e.g. '"
              + p + "/32'");
    }
    String[] reversed = new String[labels.size()];
    for (int k = 0; k < labels.size(); k++) {
      reversed[labels.size() - 1 - k] = labels.get(k);
    }
    if (verbatim) {
      return new NamePattern(pattern, reversed, leading);
    }
    StringBuilder text = new StringBuilder(length);
    if (leading) {
      text.append("*.");
    }
    for (int k = 0; k < display.size(); k++) {
      if (k > 0) {
        text.append('.');
      }
      text.append(display.get(k));
    }
    return new NamePattern(text.toString(), reversed, leading);
  }

  private static void expandVariables(
      String pattern, String label, Map<String, String> variables, List<String> out)
      throws PatternException {
    StringBuilder expanded = new StringBuilder();
    int i = 0;
    while (i < label.length()) {
      int open = label.indexOf('{', i);
      if (open < 0) {
        expanded.append(label, i, label.length());
        break;
      }
      int close = label.indexOf('}', open);
      if (close < 0 || label.indexOf('}', i) < open) {
        throw new PatternException("'" + pattern + "' has an unbalanced '{' or '}'");
      }
      expanded.append(label, i, open);
      String name = label.substring(open + 1, close);
      if (name.isEmpty()) {
        throw new PatternException("'" + pattern + "' has an empty variable '{}'");
      }
      String value = variables.get(name);
      if (value == null) {
        throw new PatternException(
            "'" + pattern + "' uses variable {" + name + "}, which is not set under variables:",
            name);
      }
      if (value.equals("*")) {
        if (open != 0 || close != label.length() - 1) {
          throw new PatternException(
              "variable {" + name + "} is '*' (any one label), so it must stand for a whole label"
                  + " in '" + pattern + "'");
        }
        out.add(ANY_LABEL);
        return;
      }
      expanded.append(value);
      i = close + 1;
    }
    String value = expanded.toString();
    if (value.indexOf('}') >= 0) {
      throw new PatternException("'" + pattern + "' has an unbalanced '}'");
    }
    for (String part : value.split("\\.", -1)) {
      if (part.isEmpty() || part.indexOf('*') >= 0) {
        throw new PatternException(
            "'" + pattern + "' expands to '" + value + "', which is not a valid name part");
      }
      out.add(literalLabel(pattern, part));
    }
  }

  private static String literalLabel(String pattern, String label) throws PatternException {
    String l = label;
    if (!isAscii(l)) {
      try {
        l = IDN.toASCII(l, IDN.USE_STD3_ASCII_RULES);
      } catch (IllegalArgumentException e) {
        throw new PatternException(
            "'" + pattern + "': label '" + label + "' is not a valid internationalized name");
      }
    }
    l = HostName.toLowerAscii(l);
    if (l.length() > HostName.MAX_LABEL) {
      throw new PatternException(
          "'" + pattern + "': label '" + label + "' is longer than 63 characters");
    }
    if (!HostName.isLabel(l)) {
      throw new PatternException(
          "'" + pattern + "': label '" + label + "' may only hold letters, digits, '-' and '_',"
              + " and may not start or end with '-'");
    }
    return l;
  }

  private static boolean isAscii(String s) {
    for (int i = 0; i < s.length(); i++) {
      if (s.charAt(i) >= 0x80) {
        return false;
      }
    }
    return true;
  }

  private static boolean isDigits(String s) {
    for (int i = 0; i < s.length(); i++) {
      if (s.charAt(i) < '0' || s.charAt(i) > '9') {
        return false;
      }
    }
    return true;
  }

  private static String starAdvice(String pattern, String p, int index) {
    if (index == 0) {
      String rest = p.indexOf('.') < 0 ? p.replace("*", "") : p.substring(p.indexOf('.') + 1);
      if (p.startsWith("*") && p.indexOf('.') > 1 && p.charAt(1) != '.') {
        rest = p.substring(1); // '*foo.com' -> '*.foo.com'
      }
      return "'" + pattern + "': '*' must be a whole label; for every subdomain write '*." + rest
          + "'";
    }
    return "'" + pattern + "': '*' must be a whole label; partial-label wildcards such as"
        + " 'md-*' are not supported";
  }
}
