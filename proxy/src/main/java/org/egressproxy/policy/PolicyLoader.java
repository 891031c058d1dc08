package org.egressproxy.policy;

import java.nio.file.Path;
import org.egressproxy.catalog.CatalogSet;
import org.egressproxy.config.Config;
import org.egressproxy.config.ConfigException;
import org.egressproxy.config.ConfigLoader;
import org.egressproxy.config.Problems;

/** Configuration file → catalogs → compiled policy, with every problem of every step. */
public final class PolicyLoader {
  /** A successful load; {@code problems} holds its warnings. */
  public record Loaded(Config config, CatalogSet catalogs, CompiledPolicy policy,
      Problems problems) {}

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
    CompiledPolicy policy = new PolicyCompiler().compile(config, catalogs, problems);
    if (policy == null || problems.hasErrors()) {
      throw new ConfigException(problems);
    }
    return new Loaded(config, catalogs, policy, problems);
  }
}
