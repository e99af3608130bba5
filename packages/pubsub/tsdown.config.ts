import { defineConfig } from 'tsdown'
import { packageBuild } from '../../tsdown.config.ts'

export default defineConfig(packageBuild(['src/index.ts', 'src/graphql.ts']))
