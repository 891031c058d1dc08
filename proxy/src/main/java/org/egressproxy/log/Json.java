package org.egressproxy.log;

/** The one piece of JSON writing the proxy needs: a correctly escaped string. */
public final class Json {
  private Json() {}

  /**
   * Appends {@code s} as a JSON string: quotes, backslash and every control character (C0, DEL,
   * C1, U+2028/9) escaped.
   */
  public static void quote(StringBuilder sb, String s) {
    sb.append('"');
    int plain = 0; // the common case - a host name, an address - has nothing to escape
    while (plain < s.length() && !escaped(s.charAt(plain))) {
      plain++;
    }
    if (plain == s.length()) {
      sb.append(s).append('"');
      return;
    }
    sb.append(s, 0, plain);
    for (int i = plain; i < s.length(); i++) {
      char c = s.charAt(i);
      switch (c) {
        case '"' -> sb.append("\\\"");
        case '\\' -> sb.append("\\\\");
        case '\n' -> sb.append("\\n");
        case '\r' -> sb.append("\\r");
        case '\t' -> sb.append("\\t");
        default -> {
          if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c == 0x2028 || c == 0x2029) {
            sb.append(String.format("\\u%04x", (int) c));
          } else {
            sb.append(c);
          }
        }
      }
    }
    sb.append('"');
  }

  private static boolean escaped(char c) {
    // C1 controls too (U+0085 is a line break to Python's splitlines, as U+2028/9 are to JS)
    return c < 0x20 || c == '"' || c == '\\' || (c >= 0x7f && c <= 0x9f) || c == 0x2028
        || c == 0x2029;
  }

  public static String quote(String s) {
    StringBuilder sb = new StringBuilder(s.length() + 2);
    quote(sb, s);
    return sb.toString();
  }
}
