#!/usr/bin/env node
// The test apps' build: checks aws-cdk-lib resolves and writes a small
// artifact, so the build stage has something real to package.
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const { load } = require('./lib/deps');

const { version } = load('aws-cdk-lib/package.json');
fs.mkdirSync(path.join(__dirname, 'artifacts'), { recursive: true });
fs.writeFileSync(path.join(__dirname, 'artifacts', 'build.json'), `${JSON.stringify({ awsCdkLib: version })}\n`);
console.log(`build: aws-cdk-lib ${version}`);
