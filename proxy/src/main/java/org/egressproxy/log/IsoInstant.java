package org.egressproxy.log;

import java.time.Instant;

/**
 * An {@link Instant} written exactly as {@link Instant#toString()} writes it (ISO-8601 UTC, the
 * fraction in groups of three digits, as many as needed), without its formatter: the date and
 * time up to the second are kept for the current second, the fraction is written digit by digit.
 * Two lines per tunnel take their timestamp here.
 */
final class IsoInstant {
  private IsoInstant() {}

  private record Second(long epochSecond, String upToSecond) {}

  /** The last second written; replaced whole, so threads racing on it see one or the other. */
  private static volatile Second last = new Second(Long.MIN_VALUE, "");

  static void append(StringBuilder sb, Instant t) {
    long s = t.getEpochSecond();
    Second cached = last;
    if (cached.epochSecond() != s) {
      String whole = Instant.ofEpochSecond(s).toString(); // ...THH:MM:SSZ
      cached = new Second(s, whole.substring(0, whole.length() - 1));
      last = cached;
    }
    sb.append(cached.upToSecond());
    int nano = t.getNano();
    if (nano != 0) {
      sb.append('.');
      if (nano % 1_000_000 == 0) {
        digits(sb, nano / 1_000_000, 100);
      } else if (nano % 1_000 == 0) {
        digits(sb, nano / 1_000, 100_000);
      } else {
        digits(sb, nano, 100_000_000);
      }
    }
    sb.append('Z');
  }

  /** {@code value}'s digits from {@code place} (100 for three digits) down, zeros kept. */
  private static void digits(StringBuilder sb, int value, int place) {
    for (; place > 0; place /= 10) {
      sb.append((char) ('0' + value / place % 10));
    }
  }
}
