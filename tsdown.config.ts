import { defineConfig, type UserConfig } from 'tsdown'

// Every publishable package builds the same way; a package passes only its entry points.
export function packageBuild(entry: string[] = ['src/index.ts']): UserConfig {
  return {
    entry,
    format: ['esm', 'cjs'],
    dts: true,
    clean: true,
    platform: 'node',
    target: 'node20',
    fixedExtension: false,
    sourcemap: false,
  }
}

export default defineConfig(packageBuild())
