export { aggregatorModule } from './main.js';
