package org.egressproxy.bench.policy;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.SplittableRandom;
import org.egressproxy.catalog.CatalogSet;
import org.egressproxy.config.Config;
import org.egressproxy.config.Config.EnforcementMode;
import org.egressproxy.config.Config.LocalRule;
import org.egressproxy.config.Problems;
import org.egressproxy.config.SourceRef;
import org.egressproxy.match.PortSet;
import org.egressproxy.match.Protocol;
import org.egressproxy.policy.CompiledPolicy;
import org.egressproxy.policy.PolicyCompiler;

/**
 * Synthetic rule sets shaped like real egress policies: most rules exact names, one in five a
 * {@code *.} wildcard, a few denies, over shared suffixes (teams, regions, providers).
 * Deterministic for a given size.
 */
public final class RuleSets {
  private RuleSets() {}

  /** The name exact rule number {@code i} is written for: 5 labels. */
  static String name(int i) {
    return "svc" + i + ".team" + (i % 997) + ".r" + (i % 31) + ".provider" + (i % 7) + ".com";
  }

  /** What wildcard rule number {@code i} covers the subdomains of: 4 labels. */
  static String wildcardBase(int i) {
    return "svc" + i + ".r" + (i % 31) + ".provider" + (i % 7) + ".com";
  }

  static boolean isWildcard(int i) {
    return i % 5 == 4;
  }

  /** Exact names, one in five a {@code *.} wildcard, one in fifty a deny. */
  public static List<LocalRule> rules(int count) {
    List<LocalRule> rules = new ArrayList<>(count);
    SourceRef at = new SourceRef("bench", 0);
    for (int i = 0; i < count; i++) {
      boolean deny = i % 50 == 49;
      String pattern = isWildcard(i) ? "*." + wildcardBase(i) : name(i);
      rules.add(new LocalRule(deny, pattern, deny ? null : PortSet.HTTPS, Protocol.ANY, at));
    }
    return rules;
  }

  static double[] zipfCdf(int n, double s) {
    double[] cdf = new double[n];
    double sum = 0;
    for (int i = 0; i < n; i++) {
      sum += 1 / Math.pow(i + 1, s);
      cdf[i] = sum;
    }
    for (int i = 0; i < n; i++) {
      cdf[i] /= sum;
    }
    return cdf;
  }

  static int rank(double[] cdf, double u) {
    int i = java.util.Arrays.binarySearch(cdf, u);
    return Math.min(cdf.length - 1, i >= 0 ? i : -i - 1);
  }

  /** A fixed permutation of ranks over rule indexes, so hot rules are spread over the trie. */
  static int scatter(int rank, int n) {
    return (int) ((rank * 2_654_435_761L) % n);
  }

  public static Config config(int count) {
    return new Config("bench", List.of(), null, List.of(),
        new Config.Policy(EnforcementMode.ENFORCE, List.of(), List.of(), rules(count), List.of()),
        Map.of(), List.of(), null, Config.DEFAULT_CACHE_MAX_ENTRIES, Config.Timeouts.DEFAULTS,
        Config.Tunnel.DEFAULTS, Config.DEFAULT_SHUTDOWN_DRAIN, null, Config.Limits.DEFAULTS);
  }

  public static CompiledPolicy compile(Config config) {
    Problems problems = new Problems();
    CompiledPolicy p = new PolicyCompiler().compile(config, CatalogSet.load(List.of(), problems),
        problems);
    if (p == null) {
      throw new IllegalStateException(problems.errors().toString());
    }
    return p;
  }

  /**
   * Five-label query names: half match a rule (exactly, or under a wildcard), half miss late
   * (first label differs, or the apex of a wildcard), so every walk goes deep.
   */
  public static String[] queries(int ruleCount, int n, long seed) {
    return queries(ruleCount, n, seed, false);
  }

  /**
   * As {@link #queries(int, int, long)}; with {@code zipf}, rules are drawn with a Zipfian
   * distribution (exponent 0.99, as YCSB and Caffeine's benchmarks use): a few destinations take
   * most of the traffic, as in real egress. Ranks are scattered over the rules.
   */
  public static String[] queries(int ruleCount, int n, long seed, boolean zipf) {
    SplittableRandom r = new SplittableRandom(seed);
    double[] cdf = zipf ? zipfCdf(ruleCount, 0.99) : null;
    String[] out = new String[n];
    for (int k = 0; k < n; k++) {
      int i = zipf ? scatter(rank(cdf, r.nextDouble()), ruleCount) : r.nextInt(ruleCount);
      boolean hit = (k & 1) == 0;
      if (isWildcard(i)) {
        out[k] = hit ? "x." + wildcardBase(i) : wildcardBase(i);
      } else {
        out[k] = hit ? name(i) : "nomatch" + name(i).substring(name(i).indexOf('.'));
      }
    }
    return out;
  }
}
