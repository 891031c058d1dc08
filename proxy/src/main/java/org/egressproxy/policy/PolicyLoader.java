package org.egressproxy.policy;

import java.nio.file.Path;
import org.egressproxy.catalog.CatalogSet;
import org.egressproxy.config.Config;
import org.egressproxy.config.ConfigException;
import org.egressproxy.config.ConfigLoader;
import org.egressproxy.config.Problems;

/** Configuration file → catalogs → compiled policy, with every problem of every step. */
public final class PolicyLoader {
  /**
   * A successful load; {@code policy} is the top-level policy, {@code sources} it and each
   * source's; {@code problems} holds the warnings.
   */
  public record Loaded(Config config, CatalogSet catalogs, Sources sources, Problems problems) {
    public CompiledPolicy policy() {
      return sources.base();
    }
  }

  private PolicyLoader() {}

  /**
   * Loads {@code configFile} (the embedded default when null) and compiles its policy.
   *
   * @throws ConfigException with all problems when anything is an error
   */
  public static Loaded load(Path configFile) throws ConfigException {
    Problems problems = new Problems();
    Config config = ConfigLoader.load(configFile, problems);
    if (config == null) {
      throw new ConfigException(problems);
    }
    CatalogSet catalogs = CatalogSet.load(config.policy().catalogDirs(), problems);
    Sources sources = new PolicyCompiler().compileSources(config, catalogs, problems);
    if (sources == null || problems.hasErrors()) {
      throw new ConfigException(problems);
    }
    return new Loaded(config, catalogs, sources, problems);
  }
}
