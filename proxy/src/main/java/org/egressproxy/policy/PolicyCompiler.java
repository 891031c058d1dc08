package org.egressproxy.policy;

import java.time.Clock;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.atomic.AtomicLong;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.egressproxy.catalog.Catalog;
import org.egressproxy.catalog.CatalogSet;
import org.egressproxy.config.Config;
import org.egressproxy.config.Config.CatalogRef;
import org.egressproxy.config.Config.EnforcementMode;
import org.egressproxy.config.Config.LocalRule;
import org.egressproxy.config.Problems;
import org.egressproxy.match.Cidr;
import org.egressproxy.match.CidrTrie;
import org.egressproxy.match.NamePattern;
import org.egressproxy.match.NameTrie;
import org.egressproxy.match.PatternException;
import org.egressproxy.match.PortSet;
import org.egressproxy.match.Protocol;

/**
 * Catalogs + local rules + variables → one {@link CompiledPolicy}. Every problem goes to {@link
 * Problems} with the line it comes from; the result is {@code null} when there is an error.
 *
 * <p>A catalog rule that uses a variable which is not set is left out (a warning says so): a
 * missing value never widens the policy.
 */
public final class PolicyCompiler {
  private static final AtomicLong GENERATIONS = new AtomicLong();
  private static final Pattern VARIABLE = Pattern.compile("\\{([^{}]*)}");

  private final Clock clock;

  public PolicyCompiler(Clock clock) {
    this.clock = clock;
  }

  public PolicyCompiler() {
    this(Clock.systemUTC());
  }

  /** The top-level policy: {@code policy.catalogs} and {@code policy.rules}. */
  public CompiledPolicy compile(Config config, CatalogSet catalogs, Problems problems) {
    return compile(config, catalogs, config.policy().catalogs(), config.policy().rules(),
        variables(config, catalogs, problems), problems);
  }

  /**
   * The top-level policy and, when {@code policy.sources} is set, each source's: the top-level
   * catalogs and rules plus its own. {@code null} when there is an error.
   */
  public Sources compileSources(Config config, CatalogSet catalogs, Problems problems) {
    Map<String, String> vars = variables(config, catalogs, problems);
    CompiledPolicy base = compile(config, catalogs, config.policy().catalogs(),
        config.policy().rules(), vars, problems);
    List<Sources.Source> sources = new ArrayList<>();
    for (Config.Source s : config.policy().sources()) {
      List<CatalogRef> refs = new ArrayList<>(config.policy().catalogs());
      for (CatalogRef r : s.catalogs()) {
        if (refs.stream().noneMatch(b -> b.name().equals(r.name()))) {
          refs.add(r);
        }
      }
      List<LocalRule> rules = new ArrayList<>(config.policy().rules());
      rules.addAll(s.rules());
      CompiledPolicy p = compile(config, catalogs, refs, rules, vars, problems);
      if (p != null) {
        sources.add(new Sources.Source(s, sources.size() + 1, p));
      }
    }
    if (base == null || problems.hasErrors()) {
      return null;
    }
    return new Sources(base, sources, org.egressproxy.auth.Credentials.of(config));
  }

  private CompiledPolicy compile(Config config, CatalogSet catalogs, List<CatalogRef> refs,
      List<LocalRule> localRules, Map<String, String> vars, Problems problems) {
    boolean enforce = config.policy().mode() == EnforcementMode.ENFORCE;
    long generation = GENERATIONS.incrementAndGet();
    Rule.Context context = new Rule.Context(enforce, generation);
    NameTrie.Builder<Rule> names = NameTrie.builder(Rule.class);
    CidrTrie.Builder<Rule> cidrs = CidrTrie.builder(Rule.class);
    List<CompiledPolicy.CatalogUse> uses = new ArrayList<>();
    for (CatalogRef ref : refs) {
      Catalog c = catalogs.get(ref.name());
      if (c == null) {
        problems.error(ref.at(), "unknown catalog '" + ref.name() + "'; known catalogs: "
            + String.join(", ", catalogs.names()));
        continue;
      }
      int active = 0;
      List<String> disabled = new ArrayList<>();
      Set<String> unset = new TreeSet<>();
      for (Catalog.Rule r : c.rules()) {
        try {
          if (r.host() != null) {
            NamePattern p = NamePattern.parse(r.host(), vars);
            names.add(p, new Rule(false, p.text(), c.name(), r.ports(), r.protocols(), r.at(),
                context));
          } else {
            Cidr cidr = Cidr.parse(r.cidr());
            cidrs.add(cidr, new Rule(false, cidr.toString(), c.name(), r.ports(), r.protocols(),
                r.at(), context));
          }
          active++;
        } catch (PatternException e) {
          if (e.unsetVariable() != null) {
            unset.add(e.unsetVariable());
            disabled.add(r.pattern());
          } else {
            problems.error(r.at(), e.getMessage());
          }
        }
      }
      for (String v : unset) {
        problems.warning(ref.at(), "catalog '" + c.name() + "' uses {" + v + "}, which is not set"
            + " under variables:; its rules that need it are disabled (" + String.join(", ",
                disabled) + "). Set " + v + ": to a value, or '*' for any one label");
      }
      uses.add(new CompiledPolicy.CatalogUse(c, active, List.copyOf(disabled)));
    }
    List<Rule> local = new ArrayList<>();
    for (LocalRule r : localRules) {
      PortSet ports = r.ports() != null ? r.ports() : r.deny() ? PortSet.ALL : PortSet.HTTPS;
      try {
        if (Cidr.looksLikeCidr(r.pattern())) {
          Cidr cidr = Cidr.parse(r.pattern());
          Rule rule = new Rule(r.deny(), cidr.toString(), Rule.LOCAL, ports, r.protocols(),
              r.at(), context);
          cidrs.add(cidr, rule);
          local.add(rule);
        } else {
          NamePattern p = NamePattern.parse(r.pattern(), vars);
          Rule rule = new Rule(r.deny(), p.text(), Rule.LOCAL, ports, r.protocols(), r.at(),
              context);
          names.add(p, rule);
          local.add(rule);
        }
      } catch (PatternException e) {
        problems.error(r.at(), e.getMessage());
      }
    }
    CidrTrie.Builder<Rule> allowDest = CidrTrie.builder(Rule.class);
    for (Cidr c : config.policy().allowDestinationCidrs()) {
      allowDest.add(c, new Rule(false, c.toString(), Rule.LOCAL, PortSet.ALL,
          Protocol.ANY, null, context));
    }
    if (problems.hasErrors()) {
      return null;
    }
    return new CompiledPolicy(generation, config.policy().mode(), names.build(), cidrs.build(),
        allowDest.build(), uses, local, vars, clock.instant());
  }

  /**
   * The variables' values; a variable no catalog and no local rule uses is an error (most often a
   * typo, which would otherwise leave a catalog's rules disabled without a word).
   */
  private static Map<String, String> variables(Config config, CatalogSet catalogs,
      Problems problems) {
    Set<String> known = new LinkedHashSet<>();
    for (Catalog c : catalogs.all()) {
      known.addAll(c.variables());
    }
    List<LocalRule> rules = new ArrayList<>(config.policy().rules());
    config.policy().sources().forEach(s -> rules.addAll(s.rules()));
    for (LocalRule r : rules) {
      Matcher m = VARIABLE.matcher(r.pattern());
      while (m.find()) {
        known.add(m.group(1));
      }
    }
    Map<String, String> out = new LinkedHashMap<>();
    for (Config.Variable v : config.variables()) {
      if (!known.contains(v.name())) {
        problems.error(v.at(), "unknown variable '" + v.name() + "': no catalog or rule uses it;"
            + " known variables: " + String.join(", ", new TreeSet<>(known)));
        continue;
      }
      out.put(v.name(), v.value());
    }
    return out;
  }
}
