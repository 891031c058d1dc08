package org.egressproxy.match;

import java.net.IDN;

/**
 * Canonical form of a DNS host name as the policy compares it: lower case, ASCII (IDN labels in
 * punycode), no trailing dot, every label 1-63 characters of {@code [a-z0-9_-]} not starting or
 * ending with a hyphen, at most 253 characters, and a last label that is not a number: not all
 * digits, not {@code 0x} and hex digits (so the numeric shorthands {@code 127.1}, {@code
 * 2130706433}, {@code 0x7f.1} or {@code 0x7f000001} are never names).
 *
 * <p>Pure functions, no allocation when the input is already canonical (the common case on the
 * data plane: clients send lower-case names).
 */
public final class HostName {
  public static final int MAX_NAME = 253;
  public static final int MAX_LABEL = 63;

  private HostName() {}

  /**
   * Returns the canonical form of {@code raw}, or {@code null} when it is not a valid DNS name.
   * IP literals are not names: callers try {@link IpLiteral#parse} first.
   */
  public static String normalize(String raw) {
    if (raw == null) {
      return null;
    }
    int len = raw.length();
    if (len > 0 && raw.charAt(len - 1) == '.') {
      len--; // one trailing dot: the absolute form of the same name
    }
    if (len == 0 || len > 4 * MAX_NAME) {
      return null;
    }
    if (isCanonical(raw, len)) {
      return len == raw.length() ? raw : raw.substring(0, len);
    }
    String s = raw.substring(0, len);
    boolean ascii = true;
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c > 0x7f) {
        ascii = false;
      } else if (c <= 0x20 || c == 0x7f) {
        return null; // controls, space, NUL: never part of a name, not even an IDN one
      }
    }
    if (!ascii) {
      try {
        // IDNA: NFKC mapping, case folding, then punycode per label.
        s = IDN.toASCII(s, IDN.USE_STD3_ASCII_RULES);
      } catch (IllegalArgumentException e) {
        return null;
      }
    }
    s = toLowerAscii(s);
    if (!ascii && s.endsWith(".")) {
      s = s.substring(0, s.length() - 1); // IDN may map an ideographic full stop to a trailing dot
    }
    return isCanonical(s, s.length()) ? s : null;
  }

  /** True when the first {@code len} characters of {@code s} are already a canonical name. */
  static boolean isCanonical(String s, int len) {
    if (len == 0 || len > MAX_NAME) {
      return false;
    }
    int labelStart = 0;
    boolean allDigits = true;
    for (int i = 0; i <= len; i++) {
      char c = i < len ? s.charAt(i) : '.';
      if (c == '.') {
        int labelLen = i - labelStart;
        if (labelLen == 0 || labelLen > MAX_LABEL) {
          return false;
        }
        if (s.charAt(labelStart) == '-' || s.charAt(i - 1) == '-') {
          return false;
        }
        if (i == len && (allDigits || isHexNumber(s, labelStart, i))) {
          // Last label a number - decimal, or 0x hex as URL parsers and inet_aton read it - so
          // the whole is an IPv4 shorthand (127.1, 2130706433, 0x7f000001), not a name.
          return false;
        }
        labelStart = i + 1;
        allDigits = true;
      } else if ((c >= 'a' && c <= 'z') || c == '-' || c == '_') {
        allDigits = false;
      } else if (c < '0' || c > '9') {
        return false;
      }
    }
    return true;
  }

  /** {@code 0x} followed by hex digits only: a number to WHATWG URL parsers and inet_aton. */
  private static boolean isHexNumber(String s, int from, int to) {
    if (to - from < 2 || s.charAt(from) != '0' || s.charAt(from + 1) != 'x') {
      return false;
    }
    for (int i = from + 2; i < to; i++) {
      char c = s.charAt(i);
      if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
        return false;
      }
    }
    return true;
  }

  /** True when {@code s} is one canonical label: 1-63 of [a-z0-9_-], no hyphen at either end. */
  static boolean isLabel(String s) {
    int n = s.length();
    if (n == 0 || n > MAX_LABEL || s.charAt(0) == '-' || s.charAt(n - 1) == '-') {
      return false;
    }
    for (int i = 0; i < n; i++) {
      char c = s.charAt(i);
      if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_')) {
        return false;
      }
    }
    return true;
  }

  static String toLowerAscii(String s) {
    for (int i = 0; i < s.length(); i++) {
      char c = s.charAt(i);
      if (c >= 'A' && c <= 'Z') {
        char[] chars = s.toCharArray();
        for (int j = i; j < chars.length; j++) {
          char d = chars[j];
          if (d >= 'A' && d <= 'Z') {
            chars[j] = (char) (d + ('a' - 'A'));
          }
        }
        return new String(chars);
      }
    }
    return s;
  }
}
