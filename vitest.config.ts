import { readdirSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { defineConfig } from 'vitest/config'

// Every workspace package with tests is a project of one root run, so the Redis servers started
// by the global setup are shared by all of them.
const projects = ['packages', 'apps'].flatMap((dir) =>
  readdirSync(new URL(`./${dir}/`, import.meta.url), { withFileTypes: true })
    .filter((entry) => entry.isDirectory())
    .map((entry) => ({
      extends: true as const,
      test: {
        name: entry.name,
        root: fileURLToPath(new URL(`./${dir}/${entry.name}`, import.meta.url)),
        include: ['src/**/*.test.ts'],
      },
    })),
)

export default defineConfig({
  root: import.meta.dirname,
  resolve: { conditions: ['@rp/source'] },
  ssr: { resolve: { conditions: ['@rp/source'] } },
  test: {
    projects,
    globalSetup: [fileURLToPath(new URL('./packages/testing/src/global-setup.ts', import.meta.url))],
    testTimeout: 30_000,
    hookTimeout: 60_000,
    passWithNoTests: false,
    reporters: [
      'default',
      fileURLToPath(new URL('./packages/testing/src/summary-reporter.ts', import.meta.url)),
    ],
  },
})
